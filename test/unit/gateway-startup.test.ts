/**
 * Start-up against a cluster that is not ready yet, without a broker: the fake producer cluster
 * behind the pool, an in-memory topic source, and a stand-in transaction service whose start()
 * runs one Kafka-like step through the same retry machinery as the idempotency store, failing the
 * way a topic created a moment ago does ("Local: No such entry") for as long as the test says.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PoolClosedError } from '../../src/errors.js';
import type { GatewayConfig } from '../../src/gateway/config.js';
import type { TransactionRunner } from '../../src/gateway/group-commit/participant.js';
import { startGateway, type RunningGateway, type StartableService } from '../../src/gateway/server.js';
import { GatewayStartError, retryStep, StartupTracker, type StartContext } from '../../src/gateway/startup.js';
import { FakeCluster, kafkaErrors } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';
import { memorySource } from '../support/gateway-stubs.js';
import { testGatewayConfig } from '../support/gateway-config.js';

const NOENT = () => Object.assign(new Error('Local: No such entry'), { code: -156 });
const STEP = 'listing the end offsets of the idempotency topic';

function config(over: Partial<GatewayConfig> = {}): GatewayConfig {
  return testGatewayConfig({ pool: { instanceId: 'startup-unit', transactionalIdPrefix: 'txgate-startup' }, startTimeoutMs: 60_000, ...over });
}

/**
 * A transaction service whose start() keeps failing one step while `failing` is set (or, with
 * `error`, fails with that). Its submit() runs a real transaction on the pool it was given.
 */
function flakyService(error: () => unknown = NOENT) {
  const probe = { failing: true, attempts: 0, signal: undefined as AbortSignal | undefined, closed: false };
  const make = (pool: TransactionRunner): StartableService => ({
    async start(ctx: StartContext) {
      probe.signal = ctx.signal;
      await retryStep(
        ctx,
        STEP,
        async () => {
          probe.attempts++;
          if (probe.failing) throw error();
        },
        { initialBackoffMs: 5, maxBackoffMs: 20 },
      );
    },
    async submit(req) {
      const result = await pool.run(async (tx) => tx.send(req.records));
      return { records: result.records, replayed: false };
    },
    stats: () => ({ pendingRequests: 0, openBatches: 0, transactions: 0, requests: 0, batchedRequests: 0, idempotencyKeys: 0 }),
    async close() {
      probe.closed = true;
    },
  });
  return { probe, make };
}

const topics = () => memorySource({ orders: 3, 'txgate.idempotency': 3 }).source;

const post = (gw: RunningGateway) =>
  gw.app.inject({
    method: 'POST',
    url: '/v1/transactions',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ records: [{ topic: 'orders', partition: 0, value: 'x' }] }),
  });

async function listenerRefuses(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
    return false;
  } catch {
    return true;
  }
}

test('while a start-up step keeps failing: alive, /readyz says which step and why, transactions get 503; then ready', async () => {
  const cluster = new FakeCluster();
  const { probe, make } = flakyService();
  const gw = await startGateway(config(), { producerFactory: cluster.factory, topicSource: topics(), service: make, waitUntilReady: false });
  try {
    // The listener is up before start-up is done.
    const health = await fetch(`${gw.url}/healthz`);
    assert.equal(health.status, 200);
    await waitFor(() => probe.attempts >= 2, { ...ON_FAKES, timeoutMs: 10_000, what: 'the failing step to be retried' });

    const ready = await gw.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 503, ready.body);
    assert.match(String(ready.headers['content-type']), /^application\/problem\+json/);
    const doc = ready.json();
    assert.equal(doc.code, 'TXGATE_NOT_READY');
    assert.equal(doc.checks.startup.state, 'starting');
    assert.equal(doc.checks.startup.step, STEP);
    assert.equal(doc.checks.startup.lastError, 'Local: No such entry');
    assert.ok(doc.checks.startup.attempts >= 1);
    assert.ok(!Number.isNaN(Date.parse(doc.checks.startup.stepSince)), 'says since when');
    assert.ok(!Number.isNaN(Date.parse(doc.checks.startup.lastErrorAt)));
    assert.ok(doc.detail.includes(STEP) && doc.detail.includes('Local: No such entry'), doc.detail);

    const refused = await post(gw);
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.json().code, 'TXGATE_NOT_READY');
    assert.equal(refused.headers['retry-after'], '2');
    assert.equal(cluster.callsOf('begin').length, 0, 'nothing reached Kafka');

    probe.failing = false;
    await gw.ready;
    assert.equal(gw.startup().state, 'ready');
    const readyNow = await gw.app.inject({ url: '/readyz' });
    assert.equal(readyNow.statusCode, 200, readyNow.body);
    assert.deepEqual(readyNow.json().checks, { draining: false, pool: 'ok', kafka: 'ok' });
    const committed = await post(gw);
    assert.equal(committed.statusCode, 200, committed.body);
    assert.deepEqual(cluster.committedValues('orders'), ['"x"'], 'committed through the started pool');
  } finally {
    assert.equal(await gw.close(), true);
  }
  assert.ok(await listenerRefuses(gw.url), 'the listener is closed');
  assert.deepEqual(cluster.violations, []);
});

test('a producer pool that cannot initialise yet is started again with new producers until it can', async () => {
  const cluster = new FakeCluster();
  // Pool size 2: the first start loses both inits, the second one of them, the third succeeds.
  cluster.failNext('init', () => kafkaErrors.timedOut('InitProducerId'), { times: 3 });
  const { probe, make } = flakyService();
  probe.failing = false;
  const gw = await startGateway(config(), { producerFactory: cluster.factory, topicSource: topics(), service: make, waitUntilReady: false });
  try {
    await waitFor(() => gw.startup().attempts >= 1, { ...ON_FAKES, timeoutMs: 10_000, what: 'a failed pool start to be reported' });
    const status = gw.startup();
    assert.match(status.step ?? '', /^starting the producer pool/);
    assert.match(status.lastError ?? '', /InitProducerId timed out/);
    assert.equal((await gw.app.inject({ url: '/readyz' })).statusCode, 503);
    await gw.ready;
    assert.equal((await gw.app.inject({ url: '/readyz' })).statusCode, 200);
    // Each failed start closed its producers; the pool in use is the third.
    assert.equal(cluster.created('txgate-startup-startup-unit-0'), 3);
    assert.equal((await post(gw)).statusCode, 200);
  } finally {
    await gw.close();
  }
  assert.deepEqual(cluster.violations, []);
});

test('start-up gives up at its deadline with an error naming the step and the last error, and closes', async () => {
  const cluster = new FakeCluster();
  const { probe, make } = flakyService();
  const startedAt = Date.now();
  await assert.rejects(
    startGateway(config({ startTimeoutMs: 1_500 }), { producerFactory: cluster.factory, topicSource: topics(), service: make }),
    (err: unknown) => {
      assert.ok(err instanceof GatewayStartError, String(err));
      assert.equal(err.code, 'TXGATE_START_FAILED');
      assert.equal(err.step, STEP);
      assert.match(err.message, /did not finish within 1500 ms \(--start-timeout-ms \/ TXGATE_START_TIMEOUT_MS\)/);
      assert.ok(err.message.includes(STEP), err.message);
      assert.match(err.message, /last error: Local: No such entry/);
      return true;
    },
  );
  assert.ok(Date.now() - startedAt >= 1_000, 'it retried until near the deadline');
  assert.ok(probe.attempts > 2, `retried (${probe.attempts} attempts)`);
  assert.ok(probe.closed, 'the service was closed');
  await waitFor(() => cluster.producers().every((p) => p.closed), { ...ON_FAKES, what: 'every producer closed' });
});

test('an error retrying cannot fix ends start-up at once', async () => {
  const cluster = new FakeCluster();
  const denied = () => Object.assign(new Error('Broker: Topic authorization failed'), { code: 29 });
  const { probe, make } = flakyService(denied);
  await assert.rejects(
    startGateway(config(), { producerFactory: cluster.factory, topicSource: topics(), service: make }),
    (err: unknown) => err instanceof GatewayStartError && !err.gaveUp && /Topic authorization failed/.test(err.message) && err.message.includes(STEP),
  );
  assert.equal(probe.attempts, 1);
});

test('close() while starting stops start-up and shuts down cleanly', async () => {
  const cluster = new FakeCluster();
  const { probe, make } = flakyService();
  const gw = await startGateway(config(), { producerFactory: cluster.factory, topicSource: topics(), service: make, waitUntilReady: false });
  await waitFor(() => probe.attempts >= 2, { ...ON_FAKES, timeoutMs: 10_000, what: 'start-up to be retrying' });
  assert.equal(await gw.close(), true);
  await assert.rejects(gw.ready, PoolClosedError);
  assert.equal(probe.signal?.aborted, true, 'the step was told to stop');
  const attempts = probe.attempts;
  assert.equal(gw.shutdownStep(), 'stopped');
  assert.ok(probe.closed);
  assert.ok(await listenerRefuses(gw.url), 'the listener is closed');
  await waitFor(() => cluster.producers().every((p) => p.closed), { ...ON_FAKES, what: 'every producer closed' });
  assert.equal(probe.attempts, attempts, 'no attempt after close');
});

test('retryStep: reports each failure, warns once when retrying lasts, stops on abort', async () => {
  const tracker = new StartupTracker(60_000);
  const warnings: string[] = [];
  const stop = new AbortController();
  const ctx = tracker.context(stop.signal, { warn: (_obj, msg) => warnings.push(msg ?? '') });
  let attempts = 0;
  const timeouts: number[] = [];
  const result = await retryStep(
    ctx,
    'a step',
    async (timeoutMs) => {
      timeouts.push(timeoutMs);
      if (++attempts < 4) throw NOENT();
      return 'done';
    },
    { initialBackoffMs: 1, maxBackoffMs: 2 },
  );
  assert.equal(result, 'done');
  assert.equal(tracker.status().attempts, 3);
  assert.equal(tracker.status().lastError, 'Local: No such entry');
  assert.ok(timeouts.every((t) => t >= 1_000 && t <= 10_000), 'each attempt has a bounded timeout');
  assert.deepEqual(warnings, [], 'a short hiccup is not worth a warning');

  // A step failing for longer than 5 s is logged once; abort ends it with PoolClosedError.
  const slow = { ...ctx, deadline: Date.now() + 60_000 };
  const realNow = Date.now;
  let skew = 0;
  Date.now = () => realNow() + skew;
  try {
    let n = 0;
    const running = retryStep(
      slow,
      'a slow step',
      async () => {
        n++;
        skew += 2_000; // each attempt "takes" 2 s
        if (n === 6) stop.abort();
        throw NOENT();
      },
      { initialBackoffMs: 1, maxBackoffMs: 2 },
    );
    await assert.rejects(running, PoolClosedError);
    assert.equal(warnings.length, 1, warnings.join('; '));
    assert.match(warnings[0]!, /a slow step keeps failing; retrying/);
  } finally {
    Date.now = realNow;
  }
});
