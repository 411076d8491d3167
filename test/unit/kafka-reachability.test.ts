/**
 * Kafka reachability: probes only when asked and stale, never two at once, and the gateway
 * refuses transactions at once (and ends waiting ones) while the last probe failed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGateway } from '../../src/gateway/http/app.js';
import { KafkaReachability } from '../../src/gateway/service/kafka-reachability.js';
import { TopicCatalog, type TopicMetadataSource } from '../../src/gateway/service/topic-catalog.js';
import { stubService } from '../support/gateway-stubs.js';

/** A ping whose answers the test controls: each call waits until the test settles it. */
function controlledPing() {
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const ping = (_timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      pending.push({ resolve, reject });
    });
  return { ping, pending };
}

test('probes lazily: none until asked, one at a time, again only once the result is stale', async () => {
  let now = 1_000;
  const { ping, pending } = controlledPing();
  const r = new KafkaReachability(ping, { cacheMs: 2_000, retryMs: 500, now: () => now });
  assert.equal(pending.length, 0, 'constructing it sends nothing');
  assert.deepEqual(r.current(), { state: 'unknown' });
  r.current();
  assert.equal(pending.length, 1, 'a second ask while probing does not start another probe');
  pending[0]!.resolve();
  assert.deepEqual(await r.check(), { state: 'reachable', at: 1_000 });
  now += 1_999;
  r.current();
  assert.equal(pending.length, 1, 'a fresh result is reused');
  now += 1;
  const checking = r.check();
  assert.equal(pending.length, 2, 'a stale one is probed again');
  pending[1]!.reject(new Error('timed out'));
  assert.deepEqual(await checking, { state: 'unreachable', at: 3_000, since: 3_000, error: 'timed out' });
  now += 499;
  r.current();
  assert.equal(pending.length, 2);
  now += 1;
  r.current();
  assert.equal(pending.length, 3, 'while unreachable it probes again after retryMs');
  pending[2]!.reject(new Error('still down'));
  const still = await r.check();
  assert.equal(still.state === 'unreachable' && still.since, 3_000, 'since stays the start of the outage');
});

test('refuseIfUnreachable throws a typed error, and the outage signal aborts once per outage', async () => {
  const { ping, pending } = controlledPing();
  let now = 0;
  const r = new KafkaReachability(ping, { cacheMs: 10, retryMs: 10, now: () => now });
  const first = r.outage;
  r.refuseIfUnreachable(); // unknown: let it through
  pending[0]!.reject(new Error('all brokers down'));
  await r.check();
  assert.equal(first.aborted, true);
  assert.equal((first.reason as { code: string }).code, 'TXGATE_KAFKA_UNAVAILABLE');
  assert.throws(() => r.refuseIfUnreachable(), (e: { code?: string; message?: string }) => e.code === 'TXGATE_KAFKA_UNAVAILABLE' && /all brokers down/.test(e.message ?? ''));
  now = 20;
  const recovering = r.check();
  pending[1]!.resolve();
  await recovering;
  assert.doesNotThrow(() => r.refuseIfUnreachable());
  assert.notEqual(r.outage, first, 'a new signal after recovery');
  assert.equal(r.outage.aborted, false);
});

function switchableSource() {
  const s = { down: false, pings: 0 };
  const source: TopicMetadataSource = {
    async describe(names) {
      if (s.down) throw new Error('broker down');
      return new Map(names.map((n) => [n, 1]));
    },
    async ping() {
      s.pings++;
      if (s.down) throw new Error('broker down');
    },
    async close() {},
  };
  return { s, source };
}

const post = (app: ReturnType<typeof buildGateway>, body: unknown) =>
  app.inject({ method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });

test('gateway: once a probe failed, a new transaction gets 503 TXGATE_KAFKA_UNAVAILABLE without reaching the service', async () => {
  const { s, source } = switchableSource();
  const { service, calls } = stubService();
  const app = buildGateway({ service, topics: new TopicCatalog(source), readiness: { cacheMs: 0 } });
  assert.equal((await post(app, { records: [{ topic: 'orders' }] })).statusCode, 200);
  s.down = true;
  assert.equal((await app.inject({ url: '/readyz' })).statusCode, 503);
  const refused = await post(app, { records: [{ topic: 'orders' }] });
  assert.equal(refused.statusCode, 503, refused.body);
  assert.equal(refused.json().code, 'TXGATE_KAFKA_UNAVAILABLE');
  assert.equal(refused.headers['retry-after'], '2');
  assert.match(refused.json().detail, /nothing was written/);
  assert.equal(calls.length, 1, 'the refused request never reached the service');
  // bad input is still answered as bad input
  assert.equal((await post(app, { records: [] })).statusCode, 400);
  s.down = false;
  assert.equal((await app.inject({ url: '/readyz' })).statusCode, 200);
  assert.equal((await post(app, { records: [{ topic: 'orders' }] })).statusCode, 200);
});

test('gateway: a transaction waiting when Kafka turns unreachable is answered 503 TXGATE_KAFKA_UNAVAILABLE', async () => {
  const { s, source } = switchableSource();
  let waiting: (() => void) | undefined;
  const entered = new Promise<void>((resolve) => (waiting = resolve));
  // A service that waits (as for a producer) until its signal aborts, then fails as the pool does.
  const { service } = stubService(
    (req) =>
      new Promise((_resolve, reject) => {
        waiting?.();
        req.signal?.addEventListener('abort', () => reject(Object.assign(new Error('the caller gave up waiting for a producer'), { code: 'TXGATE_ACQUIRE_ABORTED', cause: req.signal?.reason })));
      }),
  );
  const app = buildGateway({ service, topics: new TopicCatalog(source), readiness: { cacheMs: 0 } });
  assert.equal((await app.inject({ url: '/readyz' })).statusCode, 200);
  const pending = post(app, { records: [{ topic: 'orders' }] });
  await entered;
  s.down = true;
  assert.equal((await app.inject({ url: '/readyz' })).statusCode, 503);
  const res = await pending;
  assert.equal(res.statusCode, 503, res.body);
  assert.equal(res.json().code, 'TXGATE_KAFKA_UNAVAILABLE');
});
