/**
 * Tracing not configured: no SDK is registered (its own process, as every test file). An
 * incoming traceparent still reaches the records, so a consumer joins the caller's trace;
 * without one the records get no headers, and nothing else changes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProxyTracerProvider, context, trace } from '@opentelemetry/api';
import { GroupCommitter } from '../../src/gateway/group-commit/group-commit.js';
import { FakeCluster, rec, startPool } from '../support/fake-producer.js';
import { stubGateway } from '../support/gateway-stubs.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const post = (app: ReturnType<typeof stubGateway>['app'], body: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) });

test('nothing is registered', () => {
  const provider = trace.getTracerProvider();
  assert.ok(provider instanceof ProxyTracerProvider);
  assert.equal(provider.getDelegateTracer('txgate'), undefined);
});

test('the caller\'s traceparent and tracestate are passed on to every record as they came', async () => {
  const { app, calls } = stubGateway();
  const res = await post(
    app,
    { records: [{ topic: 'orders', value: 1 }, { topic: 'audit', value: 2, headers: { source: 'web' } }] },
    { traceparent: TRACEPARENT, tracestate: 'vendor=abc' },
  );
  assert.equal(res.statusCode, 200, res.body);
  const [a, b] = calls[0]!.records;
  assert.deepEqual(a!.headers, { traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
  assert.deepEqual(b!.headers, { source: 'web', traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
  await app.close();
});

test('without a traceparent the records are exactly what the body says', async () => {
  const { app, calls } = stubGateway();
  assert.equal((await post(app, { records: [{ topic: 'orders', value: 1 }, { topic: 'orders', value: 2, headers: { h: 'v' } }] })).statusCode, 200);
  assert.equal(calls[0]!.records[0]!.headers, undefined);
  assert.deepEqual(calls[0]!.records[1]!.headers, { h: 'v' });
  // A malformed one is ignored the same way.
  assert.equal((await post(app, { records: [{ topic: 'orders', value: 1 }] }, { traceparent: 'nonsense', tracestate: 'a=b' })).statusCode, 200);
  assert.equal(calls[1]!.records[0]!.headers, undefined);
  await app.close();
});

test('group commit and the pool run as before under a non-recording span', async () => {
  const cluster = new FakeCluster();
  const pool = await startPool(cluster, { size: 1 });
  const gc = new GroupCommitter({ pool });
  const remote = trace.wrapSpanContext({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true });
  const results = await context.with(trace.setSpan(context.active(), remote), () => Promise.all([gc.submit({ records: [rec('a')] }), gc.submit({ records: [rec('b')] })]));
  assert.equal(results.length, 2);
  assert.deepEqual(cluster.committedValues().sort(), ['a', 'b']);
  await gc.close();
  await pool.close();
});
