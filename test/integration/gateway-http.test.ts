/**
 * The gateway over real HTTP, on the real broker (TXGATE_TEST_BOOTSTRAP): commits verified by a
 * read_committed consumer, every error status produced by a real request, idempotent replays,
 * auth and allowlists. The 504 mapping is covered by test/unit/gateway-app.test.ts: a commit
 * whose outcome is honestly unknown needs a broker to die between EndTxn and its answer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { consumeAll, createTopics, gatedCommitFactory, testBootstrap, uniqueName, waitFor } from '../support/kafka.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import type { GatewayConfig } from '../../src/gateway/config.js';
import { DEFAULT_GATEWAY_LIMITS } from '../../src/gateway/defaults.js';
import { ConfluentTransactionalProducer } from '../../src/kafka/confluent-producer.js';
import { testGatewayConfig, type GatewayConfigOverrides } from '../support/gateway-config.js';

const bootstrap = testBootstrap();
const ADMIN = 'admin-token-0123456789abcdef';
const LIMITED = 'limited-token-0123456789abcd';

function config(over: GatewayConfigOverrides = {}): GatewayConfig {
  return testGatewayConfig({
    kafka: { 'bootstrap.servers': bootstrap },
    idempotencyTopic: uniqueName('idem'),
    shutdownTimeoutMs: 10_000,
    logLevel: 'error',
    ...over,
    pool: { acquireTimeoutMs: 10_000, instanceId: uniqueName('gw'), transactionalIdPrefix: 'txgate-http-test', ...over.pool },
  });
}

interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

async function call(gw: RunningGateway, method: string, path: string, opts: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(gw.url + path, { method, headers, body });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, headers: res.headers, body: /json/.test(type) ? JSON.parse(text) : text };
}

const commit = (gw: RunningGateway, body: unknown, headers: Record<string, string> = {}) => call(gw, 'POST', '/v1/transactions', { body, headers });

function assertProblem(reply: Reply, status: number, code: string) {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  assert.match(reply.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(reply.body.code, code);
  assert.equal(reply.body.status, status);
  assert.match(reply.body.type, /^\/problems\/[a-z-]+$/);
  return reply.body;
}

describe('gateway over HTTP on a real broker', () => {
  const orders = uniqueName('orders');
  const audit = uniqueName('audit');
  const small = uniqueName('small');
  let gw: RunningGateway;

  before(async () => {
    await createTopics(bootstrap, [
      { topic: orders, partitions: 3 },
      { topic: audit, partitions: 2 },
      { topic: small, partitions: 1, config: { 'max.message.bytes': '2000' } },
    ]);
    gw = await startGateway(
      config({
        apiKeys: [
          { name: 'admin', token: ADMIN, topics: ['*'] },
          { name: 'limited', token: LIMITED, topics: [orders] },
        ],
      }),
    );
  });
  after(() => gw?.close());

  const admin = { authorization: `Bearer ${ADMIN}` };

  it('commits records across topics atomically; a read_committed consumer sees them at the reported offsets', async () => {
    const tag = uniqueName('multi');
    const records = [
      { topic: orders, key: `${tag}-k`, value: { tag, n: 1 }, headers: { source: 'test' } },
      { topic: audit, partition: 1, valueBase64: Buffer.from(`${tag}-raw`).toString('base64') },
      { topic: orders, partition: 2, value: `${tag}-text` },
    ];
    const reply = await commit(gw, { records }, admin);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.status, 'committed');
    assert.equal(reply.body.records.length, 3);
    const [a, b, c] = reply.body.records;
    assert.equal(a.topic, orders);
    assert.deepEqual([b.topic, b.partition], [audit, 1]);
    assert.deepEqual([c.topic, c.partition], [orders, 2]);
    for (const r of reply.body.records) assert.match(r.offset, /^\d+$/);

    const seen = await consumeAll(bootstrap, [orders, audit], { isolation: 'read_committed', expected: 3 });
    const at = (pos: { topic: string; partition: number; offset: string }) =>
      seen.find((r) => r.topic === pos.topic && r.partition === pos.partition && String(r.offset) === pos.offset);
    assert.equal(at(a)?.value?.toString(), JSON.stringify({ tag, n: 1 }));
    assert.equal(at(a)?.key?.toString(), `${tag}-k`);
    assert.equal(at(b)?.value?.toString(), `${tag}-raw`);
    assert.equal(at(c)?.value?.toString(), JSON.stringify(`${tag}-text`));
    assert.equal(seen.length, 3, 'nothing else is visible (the idempotency topic is separate)');
  });

  it('replays an idempotent request without writing again; 422 for the same key with another body', async () => {
    const key = uniqueName('key');
    const topic = uniqueName('idem-data');
    await createTopics(bootstrap, [{ topic, partitions: 1 }]);
    const body = { records: [{ topic, value: { a: 1, b: 2 } }] };
    const first = await commit(gw, body, { ...admin, 'idempotency-key': key });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    // the same JSON with another key order and spacing is the same request
    const again = await call(gw, 'POST', '/v1/transactions', {
      raw: `{"records":[{"value":{"b":2,"a":1},   "topic":"${topic}"}]}`,
      headers: { ...admin, 'idempotency-key': key, 'content-type': 'application/json' },
    });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.body, first.body);
    const other = await commit(gw, { records: [{ topic, value: { a: 1, b: 3 } }] }, { ...admin, 'idempotency-key': key });
    assertProblem(other, 422, 'TXGATE_IDEMPOTENCY_MISMATCH');
    // the same key under another API key is another key
    const limitedTopicBody = { records: [{ topic: orders, value: key }] };
    const scoped = await commit(gw, limitedTopicBody, { authorization: `Bearer ${LIMITED}`, 'idempotency-key': key });
    assert.equal(scoped.status, 200);
    assert.equal(scoped.headers.get('idempotent-replayed'), null);
    const written = await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: 1 });
    assert.equal(written.length, 1, 'the replay wrote nothing');
  });

  it('400 with a pointer to each bad field, and for a bad Idempotency-Key', async () => {
    const bad = await commit(gw, { records: [{ topic: orders }, { topic: orders, partition: 'one', key: 'k', keyBase64: 'aw==' }] }, admin);
    const doc = assertProblem(bad, 400, 'TXGATE_INVALID_REQUEST');
    assert.deepEqual(doc.errors.map((e: { pointer: string }) => e.pointer).sort(), ['/records/1/keyBase64', '/records/1/partition']);
    assertProblem(await call(gw, 'POST', '/v1/transactions', { raw: '{"records":', headers: { ...admin, 'content-type': 'application/json' } }), 400, 'TXGATE_INVALID_JSON');
    assertProblem(await commit(gw, { records: [{ topic: orders }] }, { ...admin, 'idempotency-key': 'x'.repeat(256) }), 400, 'TXGATE_INVALID_IDEMPOTENCY_KEY');
  });

  it('401 without a valid token, 403 outside the allowlist and for internal topics', async () => {
    const body = { records: [{ topic: orders, value: 1 }] };
    const none = assertProblem(await commit(gw, body), 401, 'TXGATE_UNAUTHORIZED');
    assert.match(none.detail, /Authorization: Bearer/);
    assertProblem(await commit(gw, body, { authorization: 'Bearer not-a-valid-token-at-all' }), 401, 'TXGATE_UNAUTHORIZED');
    const limited = { authorization: `Bearer ${LIMITED}` };
    assert.equal((await commit(gw, body, limited)).status, 200);
    const forbidden = assertProblem(await commit(gw, { records: [{ topic: orders }, { topic: audit }] }, limited), 403, 'TXGATE_TOPIC_FORBIDDEN');
    assert.deepEqual(forbidden.errors, [{ pointer: '/records/1/topic', detail: `API key "limited" may not write to "${audit}"` }]);
    assertProblem(await commit(gw, { records: [{ topic: '__consumer_offsets' }] }, admin), 403, 'TXGATE_INTERNAL_TOPIC');
  });

  it('404 for an unknown topic and for a partition the topic does not have', async () => {
    const missing = uniqueName('missing');
    const doc = assertProblem(await commit(gw, { records: [{ topic: orders }, { topic: missing }] }, admin), 404, 'TXGATE_UNKNOWN_TOPIC');
    assert.deepEqual(doc.errors.map((e: { pointer: string }) => e.pointer), ['/records/1/topic']);
    const part = assertProblem(await commit(gw, { records: [{ topic: orders, partition: 3 }] }, admin), 404, 'TXGATE_UNKNOWN_PARTITION');
    assert.match(part.detail, /3 partitions/);
    // created a moment later: found at once (absence is only remembered briefly)
    await createTopics(bootstrap, [{ topic: missing, partitions: 1 }]);
    await waitFor(async () => (await commit(gw, { records: [{ topic: missing }] }, admin)).status === 200, { timeoutMs: 10_000, what: 'the new topic to be found' });
  });

  it('413 for a body over the limit, and when Kafka refuses a record as too large', async () => {
    const big = await commit(gw, { records: [{ topic: orders, value: 'x'.repeat(DEFAULT_GATEWAY_LIMITS.maxBodyBytes) }] }, admin);
    assertProblem(big, 413, 'TXGATE_BODY_TOO_LARGE');
    // The topic takes record batches of at most 2000 bytes: within our limits, refused by Kafka.
    const okTopic = uniqueName('ok');
    await createTopics(bootstrap, [{ topic: okTopic, partitions: 1 }]);
    const refused = await commit(gw, { records: [{ topic: okTopic, value: 'must-not-appear' }, { topic: small, value: 'y'.repeat(5000) }] }, admin);
    const doc = assertProblem(refused, 413, 'TXGATE_RECORD_TOO_LARGE');
    assert.equal(doc.kafkaCodeName, 'MSG_SIZE_TOO_LARGE');
    assert.deepEqual(doc.errors.map((e: { pointer: string }) => e.pointer), ['/records/1']);
    assert.equal((await commit(gw, { records: [{ topic: okTopic, value: 'fits' }, { topic: small, value: 'small' }] }, admin)).status, 200);
    // The refused request's record precedes "fits" in the log: were it visible, it would come first.
    const visible = await consumeAll(bootstrap, [okTopic], { isolation: 'read_committed', expected: 1 });
    assert.deepEqual(visible.map((r) => r.value?.toString()), ['"fits"'], 'nothing of the refused request is visible');
  });

  it('group commit under concurrency: fewer transactions than requests, each request exactly once, a poison request fails alone', async () => {
    const topic = uniqueName('burst');
    await createTopics(bootstrap, [{ topic, partitions: 3 }]);
    const metric = async (name: string) => {
      const text = (await call(gw, 'GET', '/metrics')).body as string;
      return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    };
    const txBefore = await metric('txgate_gateway_transactions_total');
    const reqBefore = await metric('txgate_gateway_requests_total');
    const N = 200;
    const POISON = 100;
    const replies = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        commit(
          gw,
          i === POISON
            ? { records: [{ topic, value: `r${i}` }, { topic: small, value: 'z'.repeat(5000) }] }
            : { records: [{ topic, key: `r${i}`, value: `r${i}` }, { topic, value: `r${i}-second` }] },
          admin,
        ),
      ),
    );
    replies.forEach((r, i) => {
      if (i === POISON) assertProblem(r, 413, 'TXGATE_RECORD_TOO_LARGE');
      else assert.equal(r.status, 200, `request ${i}: ${JSON.stringify(r.body)}`);
    });
    const transactions = (await metric('txgate_gateway_transactions_total')) - txBefore;
    const requests = (await metric('txgate_gateway_requests_total')) - reqBefore;
    assert.equal(requests, N - 1);
    assert.ok(transactions < requests, `${requests} requests took ${transactions} transactions`);
    const seen = await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: 2 * (N - 1) });
    const counts = new Map<string, number>();
    for (const r of seen) counts.set(r.value!.toString(), (counts.get(r.value!.toString()) ?? 0) + 1);
    for (let i = 0; i < N; i++) {
      const want = i === POISON ? undefined : 1;
      assert.equal(counts.get(JSON.stringify(`r${i}`)), want, `r${i}`);
      assert.equal(counts.get(JSON.stringify(`r${i}-second`)), want, `r${i}-second`);
    }
    // each reply's offsets point at its own records
    const [first] = replies;
    const pos = first!.body.records[1];
    const at = seen.find((r) => r.partition === pos.partition && String(r.offset) === pos.offset);
    assert.equal(at?.value?.toString(), JSON.stringify('r0-second'));
    console.log(`# group commit: ${requests} requests in ${transactions} transactions`);
  });

  it('415 for a body that is not JSON', async () => {
    const reply = await call(gw, 'POST', '/v1/transactions', { raw: 'topic=orders', headers: { ...admin, 'content-type': 'application/x-www-form-urlencoded' } });
    assertProblem(reply, 415, 'TXGATE_UNSUPPORTED_MEDIA_TYPE');
  });

  it('health, readiness, metrics and a valid OpenAPI 3.1 document', async () => {
    assert.deepEqual((await call(gw, 'GET', '/healthz')).body, { status: 'ok' });
    const ready = await call(gw, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.checks, { draining: false, pool: 'ok', kafka: 'ok' });
    const metrics = (await call(gw, 'GET', '/metrics')).body as string;
    assert.match(metrics, /txgate_http_requests_total\{method="POST",route="\/v1\/transactions",status="200"\} \d+/);
    assert.match(metrics, /txgate_pool_transactions_total\{outcome="committed"\} [1-9]/);
    assert.match(metrics, /txgate_gateway_transactions_total [1-9]/);
    const doc = (await call(gw, 'GET', '/openapi.json')).body;
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors));
    assert.equal(doc.openapi, '3.1.0');
  });
});

describe('gateway under pressure (one producer, no waiting room, commits held open)', () => {
  const topic = uniqueName('pressure');
  const gate = gatedCommitFactory(bootstrap);
  let gw: RunningGateway;

  before(async () => {
    await createTopics(bootstrap, [{ topic, partitions: 1 }]);
    gw = await startGateway(config({ pool: { size: 1, maxWaiting: 0 } }), { producerFactory: gate.factory });
  });
  after(async () => {
    gate.release();
    await gw?.close();
  });

  it('503 with Retry-After while the only producer is busy; 409 for its Idempotency-Key meanwhile', async () => {
    gate.hold();
    const slow = commit(gw, { records: [{ topic, value: 'slow' }] }, { 'idempotency-key': 'slow-1' });
    await waitFor(() => gate.waiting() === 1, { what: 'the first transaction to reach its commit' });
    const refused = await commit(gw, { records: [{ topic, value: 'refused' }] });
    const doc = assertProblem(refused, 503, 'TXGATE_POOL_SATURATED');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(doc.detail, /nothing was written/);
    assertProblem(await commit(gw, { records: [{ topic, value: 'slow' }] }, { 'idempotency-key': 'slow-1' }), 409, 'TXGATE_IDEMPOTENCY_IN_FLIGHT');
    gate.release();
    assert.equal((await slow).status, 200);
    const replay = await commit(gw, { records: [{ topic, value: 'slow' }] }, { 'idempotency-key': 'slow-1' });
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    const visible = await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: 1 });
    assert.deepEqual(visible.map((r) => r.value?.toString()), ['"slow"']);
  });

  // Fenced during the commit, the outcome is unknown to the gateway: librdkafka retries EndTxn by
  // itself, so an EndTxn that had committed (its answer lost) meets the new epoch the same way.
  // Here the zombie's init aborted the transaction: a retry commits once.
  it('504 outcome-unknown when the producer is fenced before its commit; here nothing is visible', async () => {
    const fencedTopic = uniqueName('fenced');
    await createTopics(bootstrap, [{ topic: fencedTopic, partitions: 1 }]);
    gate.hold();
    const pending = commit(gw, { records: [{ topic: fencedTopic, value: 'doomed' }] });
    await waitFor(() => gate.waiting() === 1, { what: 'the transaction to reach its commit' });
    // A zombie with the same transactional id (e.g. a second instance with the same instance id)
    // initialises: the coordinator aborts the open transaction and fences our producer.
    const [transactionalId] = gw.pool.transactionalIds;
    const zombie = new ConfluentTransactionalProducer(transactionalId!, { 'bootstrap.servers': bootstrap });
    await zombie.init(30_000);
    await zombie.close(5_000);
    gate.release();
    const reply = await pending;
    assertProblem(reply, 504, 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN');
    // the pool replaced the fenced producer: the retry commits
    await waitFor(async () => (await commit(gw, { records: [{ topic: fencedTopic, value: 'retried' }] })).status === 200, { timeoutMs: 30_000, what: 'the retry to commit' });
    const visible = await consumeAll(bootstrap, [fencedTopic], { isolation: 'read_committed', expected: 1 });
    assert.deepEqual(visible.map((r) => r.value?.toString()), ['"retried"']);
  });
});
