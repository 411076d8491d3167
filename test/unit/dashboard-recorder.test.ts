/** The dashboard's stats recorder: latency buckets, per-interval rates, the ring, errors by code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latencyBucket, LATENCY_BUCKETS, newLatencyCounts, quantileMs } from '../../src/gateway/http/dashboard/latency.js';
import { StatsRecorder } from '../../src/gateway/http/dashboard/recorder.js';
import type { ServiceStats } from '../../src/gateway/http/metrics.js';
import type { PoolStats } from '../../src/pool/types.js';

test('latency percentiles come out within half a bucket (under 5 %)', () => {
  const counts = newLatencyCounts();
  const values: number[] = [];
  // A skewed distribution from 0.3 ms to 3 s.
  for (let i = 0; i < 10_000; i++) values.push(0.3 * Math.exp((i / 10_000) ** 3 * Math.log(10_000)));
  for (const v of values) counts[latencyBucket(v)]!++;
  values.sort((a, b) => a - b);
  for (const q of [0.5, 0.9, 0.99, 0.999]) {
    const exact = values[Math.ceil(q * values.length) - 1]!;
    const estimate = quantileMs(counts, q)!;
    assert.ok(Math.abs(estimate - exact) / exact < 0.05, `q${q}: ${estimate} vs ${exact}`);
  }
  assert.equal(quantileMs(newLatencyCounts(), 0.5), null);
  assert.equal(latencyBucket(0), 0);
  assert.equal(latencyBucket(-1), 0);
  assert.equal(latencyBucket(Number.NaN), 0);
  assert.equal(latencyBucket(1e9), LATENCY_BUCKETS - 1);
});

function fakes() {
  const clock = { now: 1_000_000 };
  const service: ServiceStats = { pendingRequests: 0, openBatches: 0, transactions: 0, requests: 0, batchedRequests: 0, idempotencyKeys: 0 };
  const pool: PoolStats = {
    size: 2,
    idle: 1,
    busy: 1,
    replacing: 0,
    waiting: 3,
    maxWaiting: 128,
    closed: false,
    slots: [
      { slot: 0, transactionalId: 'p-i-0', state: 'idle', stateSince: 1, transactions: 4, replacements: 0 },
      { slot: 1, transactionalId: 'p-i-1', state: 'busy', stateSince: 2, transactions: 5, replacements: 1, lastError: 'Broker: unknown topic secret-topic' },
    ],
    counters: { committed: 0, aborted: 0, outcomeUnknown: 0, retries: 0, replacements: 1, rejected: 0 },
  };
  return { clock, service, pool, sources: { service: () => ({ ...service }), pool: () => structuredClone(pool) } };
}

test('each interval holds per-second rates, requests per transaction and latency percentiles', () => {
  const { clock, service, pool, sources } = fakes();
  const rec = new StatsRecorder(sources, { now: () => clock.now });
  rec.sample(); // baseline: no interval yet
  assert.equal(rec.snapshot().series.lastSeq, 0);

  // 2 s with 40 committed transactions carrying 100 requests, 2 aborted, and 10 answered requests.
  clock.now += 2_000;
  pool.counters.committed = 40;
  pool.counters.aborted = 2;
  service.transactions = 40;
  service.requests = 100;
  service.pendingRequests = 7;
  service.idempotencyKeys = 12;
  for (let i = 1; i <= 10; i++) rec.observeRequest(i * 10, i === 10 ? 503 : 200);
  rec.sample();
  // Then a quiet second.
  clock.now += 1_000;
  rec.sample();

  const s = rec.snapshot();
  assert.deepEqual(s.series.t, [1_002_000, 1_003_000]);
  assert.deepEqual(s.series.committed, [20, 0]);
  assert.deepEqual(s.series.aborted, [1, 0]);
  assert.deepEqual(s.series.requests, [50, 0]);
  assert.deepEqual(s.series.httpRequests, [5, 0]);
  assert.deepEqual(s.series.httpErrors, [0.5, 0]);
  assert.deepEqual(s.series.requestsPerTransaction, [2.5, null]);
  assert.deepEqual(s.series.waiting, [7, 7]);
  assert.deepEqual(s.series.busy, [1, 1]);
  assert.deepEqual(s.series.idempotencyKeys, [12, 12]);
  const p50 = s.series.p50Ms[0]!;
  const p99 = s.series.p99Ms[0]!;
  assert.ok(p50 > 47 && p50 < 53, `p50 ${p50}`);
  assert.ok(p99 > 95 && p99 < 105, `p99 ${p99}`);
  assert.equal(s.series.p50Ms[1], null, 'an interval without requests has no latency');
  assert.equal(s.latency.count, 10);
  assert.equal(s.latency.p50Ms, p50);

  assert.deepEqual(s.totals, {
    committed: 40,
    aborted: 2,
    outcomeUnknown: 0,
    retries: 0,
    replacements: 1,
    rejected: 0,
    transactions: 40,
    requests: 100,
    batchedRequests: 0,
    httpRequests: 10,
    httpErrors: 1,
  });
  assert.equal(s.pool?.waiting, 3);
  // A slot's free-text error is not passed on: it may name a topic.
  assert.doesNotMatch(JSON.stringify(s), /secret-topic/);
  assert.deepEqual(Object.keys(s.pool!.slots[1]!).sort(), ['replacements', 'slot', 'state', 'stateSince', 'transactionalId', 'transactions']);
});

test('since lists only newer intervals; the ring keeps the newest `capacity` of them', () => {
  const { clock, sources } = fakes();
  const rec = new StatsRecorder(sources, { now: () => clock.now, capacity: 5 });
  rec.sample();
  for (let i = 0; i < 12; i++) {
    clock.now += 1_000;
    rec.sample();
  }
  const all = rec.snapshot();
  assert.equal(all.series.firstSeq, 8);
  assert.equal(all.series.lastSeq, 12);
  assert.equal(all.series.t.length, 5);
  assert.equal(all.series.t.at(-1), clock.now);
  const newer = rec.snapshot(10);
  assert.deepEqual([newer.series.firstSeq, newer.series.lastSeq, newer.series.t.length], [11, 12, 2]);
  assert.equal(rec.snapshot(12).series.t.length, 0);
  // A since from before the ring (a tab hidden for long) gets what is kept.
  assert.equal(rec.snapshot(1).series.firstSeq, 8);
  // A since from the future (another process's numbering) gets nothing, and the page sees startedAt change.
  assert.equal(rec.snapshot(500).series.t.length, 0);
});

test('a counter that goes backwards (a new pool) counts as nothing, not as a negative rate', () => {
  const { clock, pool, sources } = fakes();
  const rec = new StatsRecorder(sources, { now: () => clock.now });
  pool.counters.committed = 50;
  rec.sample();
  clock.now += 1_000;
  pool.counters.committed = 3;
  rec.sample();
  clock.now += 1_000;
  pool.counters.committed = 8;
  rec.sample();
  assert.deepEqual(rec.snapshot().series.committed, [0, 5]);
});

test('the latency window covers the last `latencyWindow` intervals', () => {
  const { clock, sources } = fakes();
  const rec = new StatsRecorder(sources, { now: () => clock.now, latencyWindow: 3 });
  rec.sample();
  const second = (ms: number) => {
    rec.observeRequest(ms, 200);
    clock.now += 1_000;
    rec.sample();
  };
  second(1_000);
  second(5);
  second(5);
  assert.ok(rec.snapshot().latency.p99Ms! > 900, 'the slow request is in the window');
  second(5);
  const { latency } = rec.snapshot();
  assert.equal(latency.count, 3);
  assert.ok(latency.p99Ms! < 6, `the slow request left the window: ${latency.p99Ms}`);
  assert.equal(latency.windowSeconds, 3);
});

test('errors by code: counts, the last occurrence, most recent first, bounded', () => {
  const { clock, sources } = fakes();
  const rec = new StatsRecorder(sources, { now: () => clock.now, maxErrorCodes: 2 });
  rec.observeProblem('TXGATE_UNKNOWN_TOPIC', 404, 'POST', '/v1/transactions');
  clock.now += 10;
  rec.observeProblem('TXGATE_UNAUTHORIZED', 401, 'GET', '/v1/stats');
  clock.now += 10;
  rec.observeProblem('TXGATE_UNKNOWN_TOPIC', 404, 'POST', '/v1/transactions');
  clock.now += 10;
  rec.observeProblem('TXGATE_NOT_FOUND', 404, 'GET', 'unmatched');
  const { errors } = rec.snapshot();
  assert.deepEqual(errors, [
    { code: 'TXGATE_NOT_FOUND', type: '/problems/not-found', status: 404, count: 1, lastAt: clock.now, method: 'GET', route: 'unmatched' },
    { code: 'TXGATE_UNKNOWN_TOPIC', type: '/problems/unknown-topic', status: 404, count: 2, lastAt: clock.now - 10, method: 'POST', route: '/v1/transactions' },
  ]);
});

test('errors in the same millisecond keep the order they happened in', () => {
  const { clock, sources } = fakes();
  const rec = new StatsRecorder(sources, { now: () => clock.now });
  rec.observeProblem('TXGATE_UNKNOWN_TOPIC', 404, 'POST', '/v1/transactions');
  rec.observeProblem('TXGATE_NOT_FOUND', 404, 'GET', 'unmatched');
  rec.observeProblem('TXGATE_UNAUTHORIZED', 401, 'GET', '/v1/stats');
  rec.observeProblem('TXGATE_NOT_FOUND', 404, 'GET', 'unmatched');
  assert.deepEqual(
    rec.snapshot().errors.map((e) => e.code),
    ['TXGATE_NOT_FOUND', 'TXGATE_UNAUTHORIZED', 'TXGATE_UNKNOWN_TOPIC'],
  );
});

test('without a pool the pool figures are absent, not made up', () => {
  const { clock, service } = fakes();
  const rec = new StatsRecorder({ service: () => service }, { now: () => clock.now });
  rec.sample();
  clock.now += 1_000;
  rec.sample();
  const s = rec.snapshot();
  assert.equal(s.pool, null);
  assert.deepEqual(s.series.busy, [null]);
  assert.equal(s.totals.committed, 0);
});
