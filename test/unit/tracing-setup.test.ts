/**
 * The SDK set-up: which settings and environment variables turn tracing on and where spans go,
 * registration and shutdown (spans of drained requests exported, the globals released), sampling,
 * and the whole gateway (fake cluster, in-memory exporter) flushing its spans when it closes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { ProxyTracerProvider, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { ConfigurationError } from '../../src/errors.js';
import { addGatewayOptions, resolveGatewayConfig, type GatewayConfig } from '../../src/gateway/config.js';
import { GroupCommitter } from '../../src/gateway/group-commit/group-commit.js';
import { buildGateway } from '../../src/gateway/http/app.js';
import { startGateway, type StartableService } from '../../src/gateway/server.js';
import { TopicCatalog } from '../../src/gateway/service/topic-catalog.js';
import { otlpTracesUrl, startTracing, tracingPlan } from '../../src/gateway/tracing.js';
import { FakeCluster } from '../support/fake-producer.js';
import { memorySource, stubService } from '../support/gateway-stubs.js';
import { testGatewayConfig } from '../support/gateway-config.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
/** Keeps what it was given after shutdown (the in-memory exporter forgets it then). */
class KeepingExporter implements SpanExporter {
  readonly spans: ReadableSpan[] = [];
  shutdowns = 0;
  export(spans: ReadableSpan[], done: (result: { code: number }) => void): void {
    this.spans.push(...spans);
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {
    this.shutdowns++;
  }
}

const registered = () => (trace.getTracerProvider() as ProxyTracerProvider).getDelegateTracer('txgate') !== undefined;

describe('what turns tracing on', () => {
  it('nothing configured: off', () => {
    assert.equal(tracingPlan({}, {}), undefined);
    assert.equal(tracingPlan({ otlpEndpoint: '' }, { OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' }), undefined);
  });

  it('--otlp-endpoint, a bare address getting the traces path', () => {
    assert.deepEqual(tracingPlan({ otlpEndpoint: 'http://collector:4318' }, {})?.exporters, [{ kind: 'otlp', url: 'http://collector:4318/v1/traces' }]);
    assert.equal(otlpTracesUrl('https://c.example/otlp/v1/traces'), 'https://c.example/otlp/v1/traces');
    assert.throws(() => otlpTracesUrl('collector:4318'), ConfigurationError);
    assert.throws(() => otlpTracesUrl('grpc://collector:4317'), /OTLP over HTTP/);
    // An explicit flag wins over OTEL_TRACES_EXPORTER=none.
    assert.equal(tracingPlan({ otlpEndpoint: 'http://c:4318' }, { OTEL_TRACES_EXPORTER: 'none' })?.exporters.length, 1);
  });

  it('the standard environment variables', () => {
    assert.deepEqual(tracingPlan({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })?.exporters, [{ kind: 'otlp', url: 'http://c:4318/v1/traces' }]);
    assert.deepEqual(tracingPlan({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/base/' })?.exporters, [{ kind: 'otlp', url: 'http://c:4318/base/v1/traces' }]);
    assert.deepEqual(tracingPlan({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2/t' })?.exporters, [{ kind: 'otlp', url: 'http://b:2/t' }]);
    assert.deepEqual(tracingPlan({}, { OTEL_TRACES_EXPORTER: 'otlp' })?.exporters, [{ kind: 'otlp', url: 'http://localhost:4318/v1/traces' }]);
    assert.deepEqual(tracingPlan({}, { OTEL_TRACES_EXPORTER: 'console' })?.exporters, [{ kind: 'console' }]);
    assert.equal(tracingPlan({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }), undefined);
    assert.equal(tracingPlan({ otlpEndpoint: 'http://c:4318' }, { OTEL_SDK_DISABLED: 'true' }), undefined);
    assert.throws(() => tracingPlan({}, { OTEL_TRACES_EXPORTER: 'zipkin' }), /OTEL_TRACES_EXPORTER.*zipkin/);
  });

  it('sampling and batching from the environment, refused when malformed', () => {
    const on = { OTEL_TRACES_EXPORTER: 'otlp' };
    assert.deepEqual(tracingPlan({}, on)?.sampler, { name: 'parentbased_always_on', ratio: 1 });
    assert.deepEqual(tracingPlan({}, { ...on, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' })?.sampler, { name: 'parentbased_traceidratio', ratio: 0.01 });
    assert.throws(() => tracingPlan({}, { ...on, OTEL_TRACES_SAMPLER: 'sometimes' }), /OTEL_TRACES_SAMPLER: expected one of/);
    assert.throws(() => tracingPlan({}, { ...on, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }), /OTEL_TRACES_SAMPLER_ARG/);
    assert.deepEqual(tracingPlan({}, { ...on, OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_BSP_MAX_QUEUE_SIZE: '4096' })?.batch, { scheduledDelayMillis: 200, maxQueueSize: 4096 });
    assert.throws(() => tracingPlan({}, { ...on, OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 'many' }), /OTEL_BSP_MAX_EXPORT_BATCH_SIZE/);
  });

  it('the serve flag, with its standard variable', () => {
    const parse = (argv: string[]) => {
      const cmd = addGatewayOptions(new Command()).exitOverride();
      cmd.parse(argv, { from: 'user' });
      return resolveGatewayConfig(cmd.opts());
    };
    assert.equal(parse(['--brokers', 'k:1']).tracing?.otlpEndpoint, undefined);
    assert.equal(parse(['--brokers', 'k:1', '--otlp-endpoint', 'http://collector:4318']).tracing?.otlpEndpoint, 'http://collector:4318/v1/traces');
    assert.throws(() => parse(['--brokers', 'k:1', '--otlp-endpoint', 'nowhere']), ConfigurationError);
  });
});

describe('registration', () => {
  it('off: nothing loaded, nothing registered', async () => {
    assert.equal(await startTracing({}, { env: {} }), undefined);
    assert.equal(registered(), false);
  });

  it('registers, exports, and on shutdown exports what is left and releases the globals', async () => {
    const exporter = new KeepingExporter();
    const tracing = await startTracing({}, { exporter, env: {}, instanceId: 'gw-1', serviceVersion: '9.9.9' });
    assert.ok(tracing);
    assert.equal(registered(), true);
    trace.getTracer('t').startSpan('one').end();
    await tracing.shutdown();
    assert.equal(exporter.shutdowns, 1);
    const [span] = exporter.spans;
    assert.equal(span?.name, 'one');
    assert.equal(span?.resource.attributes['service.name'], 'txgate');
    assert.equal(span?.resource.attributes['service.instance.id'], 'gw-1');
    assert.equal(span?.resource.attributes['service.version'], '9.9.9');
    assert.equal(registered(), false);
    assert.equal(trace.getTracer('t').startSpan('two').isRecording(), false);
    // And again (a gateway restarted in the same process).
    const again = await startTracing({}, { exporter: new InMemorySpanExporter(), env: {} });
    assert.ok(again);
    await again.shutdown();
  });

  it('leaves a tracer provider registered by someone else in place', async () => {
    const theirs = new TracerProvider();
    assert.ok(trace.setGlobalTracerProvider(theirs));
    const warnings: string[] = [];
    const tracing = await startTracing({}, { exporter: new InMemorySpanExporter(), env: {}, logger: { warn: (_o, msg) => warnings.push(msg) } });
    assert.equal(tracing, undefined);
    assert.ok(warnings.some((w) => /already registered/.test(w)), warnings.join('\n'));
    trace.disable();
  });

  it('a request not sampled still passes its trace on, marked not sampled', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = await startTracing({}, { exporter, env: { OTEL_TRACES_SAMPLER: 'always_off' } });
    assert.ok(tracing);
    const { service, calls } = stubService();
    const app = buildGateway({ service, topics: new TopicCatalog(memorySource({ orders: 1 }).source) });
    const res = await app.inject({ method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json', traceparent: TRACEPARENT }, payload: '{"records":[{"topic":"orders","value":1}]}' });
    assert.equal(res.statusCode, 200);
    assert.match(String(calls[0]!.records[0]!.headers?.traceparent), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
    await app.close();
    assert.deepEqual(exporter.getFinishedSpans(), []);
    await tracing.shutdown();
  });
});

describe('the gateway', () => {
  it('traces with the exporter it is given and exports the last spans when it closes', async () => {
    const exporter = new KeepingExporter();
    const cluster = new FakeCluster();
    const config: GatewayConfig = testGatewayConfig({ pool: { size: 1, instanceId: 'tracing-unit', transactionalIdPrefix: 'txgate-tracing' } });
    const service = (pool: ConstructorParameters<typeof GroupCommitter>[0]['pool']): StartableService => {
      const gc = new GroupCommitter({ pool });
      return {
        async start() {},
        async submit(req) {
          return { records: await gc.submit(req), replayed: false };
        },
        stats: () => ({ pendingRequests: 0, openBatches: 0, transactions: 0, requests: 0, batchedRequests: 0, idempotencyKeys: 0 }),
        close: (opts) => gc.close(opts),
      };
    };
    const gw = await startGateway(config, { producerFactory: cluster.factory, topicSource: memorySource({ orders: 3 }).source, service, spanExporter: exporter });
    const res = await fetch(`${gw.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: TRACEPARENT },
      body: JSON.stringify({ records: [{ topic: 'orders', value: 1 }] }),
    });
    assert.equal(res.status, 200, await res.text());
    assert.equal(await gw.close(), true);
    assert.equal(exporter.shutdowns, 1);
    const names = exporter.spans.map((s) => s.name).sort();
    assert.deepEqual(names, ['POST /v1/transactions', 'txgate.group_commit.wait', 'txgate.transaction']);
    for (const s of exporter.spans) assert.equal(s.spanContext().traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(exporter.spans[0]?.resource.attributes['service.instance.id'], 'tracing-unit');
    assert.equal(registered(), false, 'closing the gateway released the SDK');
  });
});
