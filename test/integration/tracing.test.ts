/**
 * Tracing on the real broker: a request sent with a W3C traceparent writes that trace into the
 * headers of every record it wrote, as a read_committed consumer reads them back, so the consumer
 * continues the trace (extracted here with OpenTelemetry's own W3C propagator); requests batched
 * into one Kafka transaction each carry their own trace; and with tracing off an incoming
 * traceparent is still passed on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT_CONTEXT, trace, type TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import type { GatewayConfig } from '../../src/gateway/config.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { consumeAll, createTopics, gatedCommitFactory, testBootstrap, uniqueName, waitFor, type ConsumedRecord } from '../support/kafka.js';
import { testGatewayConfig } from '../support/gateway-config.js';

const bootstrap = testBootstrap();

function config(): GatewayConfig {
  return testGatewayConfig({
    kafka: { 'bootstrap.servers': bootstrap },
    pool: { size: 1, acquireTimeoutMs: 20_000, instanceId: uniqueName('gw'), transactionalIdPrefix: 'txgate-tracing-test' },
    idempotencyTopic: uniqueName('idem'),
    shutdownTimeoutMs: 10_000,
    logLevel: 'error',
  });
}

const hex = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');
/** A fresh caller context (random ids, sampled). */
function traceparentFor(): { traceId: string; parentId: string; traceparent: string } {
  const traceId = hex(32);
  const parentId = hex(16);
  return { traceId, parentId, traceparent: `00-${traceId}-${parentId}-01` };
}

async function post(gw: RunningGateway, body: unknown, headers: Record<string, string>) {
  const res = await fetch(`${gw.url}/v1/transactions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { records?: Array<{ topic: string; partition: number; offset: string }> } };
}

/** What a consumer does to continue the trace: OpenTelemetry's W3C propagator over the record's headers. */
const getter: TextMapGetter<ConsumedRecord> = {
  keys: (r) => r.headers.map((h) => h.key),
  get: (r, key) => r.headers.find((h) => h.key === key)?.value.toString(),
};
const propagator = new W3CTraceContextPropagator();
const consumerParent = (r: ConsumedRecord) => trace.getSpanContext(propagator.extract(ROOT_CONTEXT, r, getter));
const headerOf = (r: ConsumedRecord, name: string) => r.headers.filter((h) => h.key === name).map((h) => h.value.toString());

const orders = uniqueName('trace-orders');
const audit = uniqueName('trace-audit');
before(() => createTopics(bootstrap, [{ topic: orders, partitions: 3 }, { topic: audit, partitions: 2 }]));

describe('tracing on', () => {
  const exporter = new InMemorySpanExporter();
  const gated = gatedCommitFactory(bootstrap);
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway(config(), { spanExporter: exporter, producerFactory: gated.factory });
  });
  after(() => gw?.close());

  it('a request with a traceparent: its trace id is in the headers of every record it wrote, read back from Kafka', async () => {
    const tag = uniqueName('one');
    const { traceId, parentId, traceparent } = traceparentFor();
    const records = [
      { topic: orders, key: `${tag}-0`, value: { n: 0 } },
      { topic: audit, key: `${tag}-1`, value: { n: 1 }, headers: { source: 'test' } },
      { topic: orders, key: `${tag}-2`, partition: 2, value: { n: 2 } },
    ];
    const reply = await post(gw, { records }, { traceparent, tracestate: 'vendor=abc', 'idempotency-key': tag });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));

    const server = exporter.getFinishedSpans().find((s) => s.name === 'POST /v1/transactions' && s.spanContext().traceId === traceId);
    assert.ok(server, 'the request span continues the caller\'s trace');
    assert.equal(server.parentSpanContext?.spanId, parentId);

    const read = await consumeAll(bootstrap, [orders, audit], { isolation: 'read_committed' });
    const mine = read.filter((r) => r.key?.toString().startsWith(tag));
    assert.equal(mine.length, 3, 'every record of the request, committed');
    for (const r of mine) {
      assert.deepEqual(headerOf(r, 'traceparent'), [`00-${traceId}-${server.spanContext().spanId}-01`], `${r.topic}/${r.partition}@${r.offset}`);
      assert.deepEqual(headerOf(r, 'tracestate'), ['vendor=abc']);
      const parent = consumerParent(r);
      assert.equal(parent?.traceId, traceId);
      assert.equal(parent?.spanId, server.spanContext().spanId, 'a consumer\'s span becomes a child of the request span');
    }
    assert.deepEqual(headerOf(mine.find((r) => r.topic === audit)!, 'source'), ['test']);
    // Where the response said the records are.
    assert.deepEqual(
      mine.map((r) => `${r.topic}/${r.partition}@${r.offset}`).sort(),
      reply.body.records!.map((r) => `${r.topic}/${r.partition}@${r.offset}`).sort(),
    );
  });

  it('requests batched into one Kafka transaction each carry their own trace id', async () => {
    const tag = uniqueName('batch');
    const n = 6;
    const traces = Array.from({ length: n + 1 }, () => traceparentFor());
    // The first request holds the only producer at its commit; the others wait and form one batch.
    gated.hold();
    const body = (i: number) => ({ records: [0, 1].map((j) => ({ topic: j === 0 ? orders : audit, key: `${tag}-${i}-${j}`, value: { i, j } })) });
    const first = post(gw, body(0), { traceparent: traces[0]!.traceparent });
    await waitFor(() => gw.service.stats().pendingRequests === 1, { timeoutMs: 10_000, intervalMs: 5, what: 'the first request in its transaction' });
    const rest = traces.slice(1).map((t, k) => post(gw, body(k + 1), { traceparent: t.traceparent }));
    await waitFor(() => gw.service.stats().pendingRequests === n + 1, { timeoutMs: 10_000, intervalMs: 5, what: `${n} requests waiting` });
    gated.release();
    for (const reply of await Promise.all([first, ...rest])) assert.equal(reply.status, 200, JSON.stringify(reply.body));

    const txs = exporter.getFinishedSpans().filter((s) => s.name === 'txgate.transaction' && s.attributes['txgate.batch.requests'] === n);
    assert.equal(txs.length, 1, 'the waiting requests shared one transaction');
    const batch = txs[0]!;
    assert.equal(batch.links.length, n - 1, 'linked to the request spans of the members it is not a child of');

    const read = await consumeAll(bootstrap, [orders, audit], { isolation: 'read_committed' });
    const mine = read.filter((r) => r.key?.toString().startsWith(`${tag}-`));
    assert.equal(mine.length, 2 * (n + 1));
    for (const r of mine) {
      const i = Number(r.key!.toString().split('-').at(-2));
      const own = traces[i]!;
      const server = exporter.getFinishedSpans().find((s) => s.name === 'POST /v1/transactions' && s.spanContext().traceId === own.traceId)!;
      assert.deepEqual(headerOf(r, 'traceparent'), [`00-${own.traceId}-${server.spanContext().spanId}-01`], `request ${i}: ${r.key}`);
      if (i > 0) assert.equal(server.attributes['txgate.batch.id'], batch.attributes['txgate.batch.id']);
    }
  });
});

describe('tracing off', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway(config());
  });
  after(() => gw?.close());

  it('an incoming traceparent is still written into the records\' headers; without one, none is', async () => {
    assert.equal(trace.getTracer('txgate').startSpan('probe').isRecording(), false, 'no SDK registered');
    const tag = uniqueName('off');
    const { traceparent } = traceparentFor();
    assert.equal((await post(gw, { records: [{ topic: orders, key: `${tag}-traced`, value: 1 }] }, { traceparent, tracestate: 'v=1' })).status, 200);
    assert.equal((await post(gw, { records: [{ topic: orders, key: `${tag}-plain`, value: 2 }] }, {})).status, 200);
    const read = (await consumeAll(bootstrap, orders)).filter((r) => r.key?.toString().startsWith(tag));
    const traced = read.find((r) => r.key?.toString().endsWith('traced'))!;
    const plain = read.find((r) => r.key?.toString().endsWith('plain'))!;
    assert.deepEqual(headerOf(traced, 'traceparent'), [traceparent], 'the caller\'s own context: the consumer becomes its child');
    assert.deepEqual(headerOf(traced, 'tracestate'), ['v=1']);
    assert.deepEqual(plain.headers, []);
  });
});
