/**
 * Tracing with an SDK registered (an in-memory exporter, through the gateway's own set-up): the
 * request span's parent from an incoming traceparent, the trace context written into every
 * record's headers, error status, and group commit's wait and transaction spans with their links,
 * over the real pool on the fake cluster.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { TransactionOutcomeUnknownError } from '../../src/errors.js';
import { GroupCommitter } from '../../src/gateway/group-commit/group-commit.js';
import { buildGateway, type GatewayService } from '../../src/gateway/http/app.js';
import { TopicCatalog } from '../../src/gateway/service/topic-catalog.js';
import { startTracing } from '../../src/gateway/tracing.js';
import type { OutgoingRecord } from '../../src/pool/producer-port.js';
import { FakeCluster, flush, kafkaErrors, rec, startPool } from '../support/fake-producer.js';
import { memorySource, stubGateway, stubService } from '../support/gateway-stubs.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

const exporter = new InMemorySpanExporter();
const tracing = await startTracing({}, { exporter, env: {} });
assert.ok(tracing, 'an exporter turns tracing on');
after(() => tracing.shutdown());
beforeEach(() => exporter.reset());

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

const spans = (name?: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => name === undefined || s.name === name);
async function waitForSpans(name: string, n: number): Promise<ReadableSpan[]> {
  await waitFor(() => spans(name).length >= n, { ...ON_FAKES, what: `${n} ${name} spans` });
  return spans(name);
}
/** The first span of that name, once there is one. */
const firstSpan = async (name: string): Promise<ReadableSpan> => (await waitForSpans(name, 1))[0]!;
const header = (r: OutgoingRecord, name: string) => r.headers?.[name]?.toString();

function post(app: ReturnType<typeof buildGateway>, body: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) });
}

describe('the request span', () => {
  it('continues the caller\'s trace, and every record carries the request span\'s context', async () => {
    const { app, calls } = stubGateway();
    const res = await post(
      app,
      { records: [{ topic: 'orders', value: 1 }, { topic: 'audit', value: 2, headers: { source: 'web' } }] },
      { traceparent: TRACEPARENT, tracestate: 'vendor=abc,other=1', 'idempotency-key': 'k-1' },
    );
    assert.equal(res.statusCode, 200, res.body);
    const server = await firstSpan('POST /v1/transactions');
    assert.equal(server.kind, SpanKind.SERVER);
    assert.equal(server.spanContext().traceId, TRACE_ID);
    assert.equal(server.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(server.parentSpanContext?.isRemote, true);
    assert.equal(server.status.code, SpanStatusCode.UNSET);
    assert.equal(server.attributes['http.request.method'], 'POST');
    assert.equal(server.attributes['http.route'], '/v1/transactions');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['txgate.request.records'], 2);
    assert.equal(server.attributes['txgate.idempotency_key.present'], true);

    const records = calls[0]!.records;
    const own = `00-${TRACE_ID}-${server.spanContext().spanId}-01`;
    for (const r of records) {
      assert.equal(header(r, 'traceparent'), own);
      assert.equal(header(r, 'tracestate'), 'vendor=abc,other=1');
    }
    assert.equal(header(records[1]!, 'source'), 'web', 'the client\'s headers stay');
    await app.close();
  });

  it('starts a new trace without a traceparent, and still gives the records its context', async () => {
    const { app, calls } = stubGateway();
    assert.equal((await post(app, { records: [{ topic: 'orders', value: 1 }] })).statusCode, 200);
    const server = await firstSpan('POST /v1/transactions');
    assert.equal(server.parentSpanContext, undefined);
    assert.equal(server.attributes['txgate.idempotency_key.present'], false);
    assert.equal(header(calls[0]!.records[0]!, 'traceparent'), `00-${server.spanContext().traceId}-${server.spanContext().spanId}-01`);
    assert.equal(header(calls[0]!.records[0]!, 'tracestate'), undefined);
    await app.close();
  });

  it('ignores a malformed traceparent (and its tracestate), as the W3C specification asks', async () => {
    const { app, calls } = stubGateway();
    for (const bad of ['00-' + '0'.repeat(32) + '-00f067aa0ba902b7-01', 'ff-' + TRACE_ID + '-00f067aa0ba902b7-01', '00-' + TRACE_ID.toUpperCase() + '-00f067aa0ba902b7-01', `${TRACEPARENT}-extra`, `${TRACEPARENT}, ${TRACEPARENT}`]) {
      exporter.reset();
      assert.equal((await post(app, { records: [{ topic: 'orders', value: 1 }] }, { traceparent: bad, tracestate: 'a=b' })).statusCode, 200);
      const server = await firstSpan('POST /v1/transactions');
      assert.equal(server.parentSpanContext, undefined, bad);
      assert.notEqual(server.spanContext().traceId, TRACE_ID);
      assert.equal(header(calls.at(-1)!.records[0]!, 'tracestate'), undefined);
    }
    // A later version may append fields; its first four still count.
    exporter.reset();
    await post(app, { records: [{ topic: 'orders', value: 1 }] }, { traceparent: `01-${TRACE_ID}-${PARENT_ID}-01-more` });
    assert.equal((await firstSpan('POST /v1/transactions')).spanContext().traceId, TRACE_ID);
    await app.close();
  });

  it('keeps a record\'s own traceparent from the body, adding nothing to that record', async () => {
    const { app, calls } = stubGateway();
    const theirs = '00-11111111111111111111111111111111-2222222222222222-01';
    const res = await post(
      app,
      { records: [{ topic: 'orders', value: 1, headers: { TraceParent: theirs } }, { topic: 'orders', value: 2 }] },
      { traceparent: TRACEPARENT, tracestate: 'vendor=abc' },
    );
    assert.equal(res.statusCode, 200, res.body);
    const [mine, other] = calls[0]!.records;
    assert.deepEqual(mine!.headers, { TraceParent: theirs });
    assert.match(header(other!, 'traceparent')!, new RegExp(`^00-${TRACE_ID}-`));
    await app.close();
  });

  it('counts the trace headers against the record size limit: 413 naming them', async () => {
    const { app, calls } = stubGateway({ limits: { maxRecordBytes: 100 } });
    // 96 bytes of value: within the limit as sent, over it with traceparent (66 bytes) added.
    const res = await post(app, { records: [{ topic: 'orders', valueBase64: Buffer.alloc(96).toString('base64') }] }, { traceparent: TRACEPARENT });
    assert.equal(res.statusCode, 413, res.body);
    const doc = res.json();
    assert.equal(doc.code, 'TXGATE_RECORD_TOO_LARGE');
    assert.match(doc.detail, /162 bytes .* 66 of them the trace context headers/);
    assert.deepEqual(doc.errors.map((e: { pointer: string }) => e.pointer), ['/records/0']);
    assert.equal(calls.length, 0);
    const server = await firstSpan('POST /v1/transactions');
    assert.equal(server.attributes['http.response.status_code'], 413);
    assert.equal(server.attributes['error.type'], 'TXGATE_RECORD_TOO_LARGE');
    assert.equal(server.status.code, SpanStatusCode.UNSET, 'a 4xx is not a server error');
    await app.close();
  });

  it('marks a 5xx as an error with its problem code; a refused body is a 4xx with its code', async () => {
    const { service } = stubService(async () => {
      throw new TransactionOutcomeUnknownError('commit timed out');
    });
    const app = buildGateway({ service, topics: new TopicCatalog(memorySource({ orders: 1 }).source) });
    assert.equal((await post(app, { records: [{ topic: 'orders', value: 1 }] }, { traceparent: TRACEPARENT })).statusCode, 504);
    const failed = await firstSpan('POST /v1/transactions');
    assert.equal(failed.status.code, SpanStatusCode.ERROR);
    assert.equal(failed.status.message, 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN');
    assert.equal(failed.attributes['error.type'], 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN');
    assert.equal(failed.attributes['http.response.status_code'], 504);

    exporter.reset();
    assert.equal((await post(app, { records: [{ topic: 'orders', vaule: 1 }] })).statusCode, 400);
    const refused = await firstSpan('POST /v1/transactions');
    assert.equal(refused.attributes['error.type'], 'TXGATE_INVALID_REQUEST');
    assert.equal(refused.status.code, SpanStatusCode.UNSET);
    await app.close();
  });

  it('traces only POST /v1/transactions', async () => {
    const { app } = stubGateway();
    await app.inject({ method: 'GET', url: '/healthz', headers: { traceparent: TRACEPARENT } });
    await app.inject({ method: 'GET', url: '/v1/transactions', headers: { traceparent: TRACEPARENT } });
    await flush();
    assert.deepEqual(spans(), []);
    await app.close();
  });
});

/** A gateway whose service is group commit over the real pool on the fake cluster (one producer). */
async function groupCommitGateway() {
  const cluster = new FakeCluster();
  const pool = await startPool(cluster, { size: 1 });
  const gc = new GroupCommitter({ pool, failureSettleMs: 100 });
  const submitted: OutgoingRecord[][] = [];
  const service: GatewayService = {
    async submit(req) {
      submitted.push(req.records);
      return { records: await gc.submit({ records: req.records, signal: req.signal }), replayed: false };
    },
    stats: () => ({ pendingRequests: 0, openBatches: 0, transactions: 0, requests: 0, batchedRequests: 0, idempotencyKeys: 0 }),
  };
  const app = buildGateway({ service, topics: new TopicCatalog(memorySource({ orders: 3 }).source) });
  return {
    cluster,
    app,
    submitted,
    async close() {
      await app.close();
      await gc.close({ timeoutMs: 1000 });
      await pool.close();
    },
  };
}

const traceparentOf = (i: number) => `00-${String(i + 1).padStart(32, 'a')}-${String(i + 1).padStart(16, 'b')}-01`;

describe('group commit spans', () => {
  it('a request alone: one trace with its wait and its transaction', async () => {
    const gw = await groupCommitGateway();
    assert.equal((await post(gw.app, { records: [{ topic: 'orders', value: 1 }, { topic: 'orders', value: 2 }] }, { traceparent: TRACEPARENT })).statusCode, 200);
    const server = await firstSpan('POST /v1/transactions');
    const [wait] = spans('txgate.group_commit.wait');
    const [tx] = spans('txgate.transaction');
    assert.ok(wait && tx);
    for (const s of [wait, tx]) {
      assert.equal(s.spanContext().traceId, TRACE_ID);
      assert.equal(s.parentSpanContext?.spanId, server.spanContext().spanId);
    }
    assert.equal(wait.attributes['txgate.batch.opened'], true);
    assert.equal(tx.kind, SpanKind.PRODUCER);
    assert.equal(tx.attributes['txgate.transaction.outcome'], 'committed');
    assert.equal(tx.attributes['txgate.batch.requests'], 1);
    assert.equal(tx.attributes['messaging.batch.message_count'], 2);
    assert.equal(tx.attributes['txgate.transactional_id'], 'tx-i1-0');
    assert.deepEqual(tx.links, []);
    assert.equal(server.attributes['txgate.batch.id'], tx.attributes['txgate.batch.id']);
    assert.equal(server.attributes['txgate.transactional_id'], 'tx-i1-0');
    // No producer was busy: the pool had nothing to wait for.
    assert.deepEqual(spans('txgate.pool.acquire'), []);
    await gw.close();
  });

  it('batched requests: one transaction span, child of the first, linked to every other; each record keeps its own trace', async () => {
    const gw = await groupCommitGateway();
    const commits = gw.cluster.hold('commit');
    const first = post(gw.app, { records: [{ topic: 'orders', value: 'first' }] }, { traceparent: traceparentOf(0) });
    await commits.next();
    const batched = [1, 2, 3].map((i) => post(gw.app, { records: [{ topic: 'orders', value: i }] }, { traceparent: traceparentOf(i) }));
    await waitFor(() => gw.submitted.length === 4, { ...ON_FAKES, what: 'four submissions' });
    commits.stop();
    for (const res of await Promise.all([first, ...batched])) assert.equal(res.statusCode, 200, res.body);

    const servers = await waitForSpans('POST /v1/transactions', 4);
    const byTrace = new Map(servers.map((s) => [s.spanContext().traceId, s]));
    const txs = spans('txgate.transaction');
    assert.equal(txs.length, 2);
    const batch = txs.find((t) => t.attributes['txgate.batch.requests'] === 3)!;
    assert.ok(batch, 'the three waiting requests share a transaction');
    const members = [1, 2, 3].map((i) => byTrace.get(traceparentOf(i).slice(3, 35))!);
    // Child of the first member's request span; linked to the two others, which link back.
    assert.equal(batch.spanContext().traceId, members[0]!.spanContext().traceId);
    assert.equal(batch.parentSpanContext?.spanId, members[0]!.spanContext().spanId);
    assert.deepEqual(new Set(batch.links.map((l) => l.context.spanId)), new Set(members.slice(1).map((m) => m.spanContext().spanId)));
    for (const m of members) {
      assert.equal(m.attributes['txgate.batch.id'], batch.attributes['txgate.batch.id']);
      assert.equal(m.attributes['txgate.batch.requests'], 3);
    }
    for (const m of members.slice(1)) assert.deepEqual(m.links.map((l) => l.context.spanId), [batch.spanContext().spanId]);
    // Each waited in its own trace; the batch's first member waited for the pool's producer.
    const waits = spans('txgate.group_commit.wait').filter((w) => w.attributes['txgate.batch.id'] === batch.attributes['txgate.batch.id']);
    assert.deepEqual(new Set(waits.map((w) => w.spanContext().traceId)), new Set(members.map((m) => m.spanContext().traceId)));
    assert.deepEqual(waits.filter((w) => w.attributes['txgate.batch.opened']).map((w) => w.spanContext().traceId), [members[0]!.spanContext().traceId]);
    const [acquire] = spans('txgate.pool.acquire');
    assert.ok(acquire, 'the first member waited for the busy producer');
    const openerWait = waits.find((w) => w.attributes['txgate.batch.opened'])!;
    assert.equal(acquire.parentSpanContext?.spanId, openerWait.spanContext().spanId);
    assert.equal(acquire.attributes['txgate.producer.slot'], 0);

    // Every record carries its own request's trace, batched or not.
    gw.submitted.forEach((records) => {
      const traceId = header(records[0]!, 'traceparent')!.slice(3, 35);
      const server = byTrace.get(traceId)!;
      assert.equal(header(records[0]!, 'traceparent'), `00-${traceId}-${server.spanContext().spanId}-01`);
    });
    await gw.close();
  });

  it('a poisoned batch: its transaction span fails, with who failed and who ran again', async () => {
    const gw = await groupCommitGateway();
    const commits = gw.cluster.hold('commit');
    const first = post(gw.app, { records: [{ topic: 'orders', value: 'first' }] }, { traceparent: traceparentOf(0) });
    await commits.next();
    gw.cluster.failNext('send', kafkaErrors.msgSizeTooLarge, { where: (c) => c.record?.value?.toString() === '"bad"' });
    const good = post(gw.app, { records: [{ topic: 'orders', value: 'good' }] }, { traceparent: traceparentOf(1) });
    const bad = post(gw.app, { records: [{ topic: 'orders', value: 'bad' }] }, { traceparent: traceparentOf(2) });
    await waitFor(() => gw.submitted.length === 3, { ...ON_FAKES, what: 'three submissions' });
    commits.stop();
    assert.equal((await first).statusCode, 200);
    assert.equal((await good).statusCode, 200, (await good).body);
    assert.equal((await bad).statusCode, 413, (await bad).body);

    await waitForSpans('POST /v1/transactions', 3);
    const poisoned = spans('txgate.transaction').find((t) => t.attributes['txgate.batch.requests'] === 2);
    assert.ok(poisoned, JSON.stringify(spans('txgate.transaction').map((t) => t.attributes)));
    assert.equal(poisoned.status.code, SpanStatusCode.ERROR);
    assert.equal(poisoned.attributes['txgate.transaction.outcome'], 'aborted');
    assert.equal(poisoned.attributes['txgate.batch.failed_requests'], 1);
    assert.equal(poisoned.attributes['txgate.batch.retried_requests'], 1);
    assert.equal(poisoned.attributes['error.type'], 'TXGATE_TRANSACTION_ABORTED');
    // The good request ran again: a second wait and a second transaction, committed.
    const goodTrace = traceparentOf(1).slice(3, 35);
    assert.equal(spans('txgate.group_commit.wait').filter((w) => w.spanContext().traceId === goodTrace).length, 2);
    const server = spans('POST /v1/transactions').find((s) => s.spanContext().traceId === goodTrace)!;
    const rerun = spans('txgate.transaction').find((t) => t.spanContext().traceId === goodTrace && t !== poisoned);
    assert.equal(rerun?.attributes['txgate.transaction.outcome'], 'committed');
    assert.equal(server.attributes['txgate.batch.id'], rerun?.attributes['txgate.batch.id'], 'the request span names the batch that committed it');
    await gw.close();
  });

  it('a request that fails waiting ends its wait span as an error', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, acquireTimeoutMs: 50 });
    const gc = new GroupCommitter({ pool });
    const commits = cluster.hold('commit');
    const tracer = trace.getTracer('test');
    const parent = tracer.startSpan('caller');
    const first = context.with(trace.setSpan(context.active(), parent), () => gc.submit({ records: [rec('a')] }));
    await commits.next();
    const second = context.with(trace.setSpan(context.active(), parent), () => gc.submit({ records: [rec('b')] }));
    await assert.rejects(second, { code: 'TXGATE_ACQUIRE_TIMEOUT' });
    commits.stop();
    await first;
    parent.end();
    const failed = spans('txgate.group_commit.wait').find((w) => w.status.code === SpanStatusCode.ERROR);
    assert.ok(failed);
    assert.equal(failed.attributes['error.type'], 'TXGATE_ACQUIRE_TIMEOUT');
    const acquire = spans('txgate.pool.acquire').find((s) => s.status.code === SpanStatusCode.ERROR);
    assert.equal(acquire?.attributes['error.type'], 'TXGATE_ACQUIRE_TIMEOUT');
    await gc.close();
    await pool.close();
  });

  it('makes no spans for a caller outside any recorded trace', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const gc = new GroupCommitter({ pool });
    await gc.submit({ records: [rec('a')] });
    assert.deepEqual(spans(), []);
    await gc.close();
    await pool.close();
  });
});
