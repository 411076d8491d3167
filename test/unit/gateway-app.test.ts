/**
 * The HTTP layer through fastify.inject(), with a stub TransactionService and an in-memory topic
 * source: request validation, every problem mapping, idempotency headers, auth, readiness.
 */
import net from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { buildGateway, GatewayState } from '../../src/gateway/http/app.js';
import { TopicCatalog } from '../../src/gateway/service/topic-catalog.js';
import { memorySource, stubGateway, stubService } from '../support/gateway-stubs.js';
import { requestFingerprint } from '../../src/gateway/http/fingerprint.js';
import { TxGateError, PoolSaturatedError, AcquireTimeoutError, PoolClosedError, TransactionAbortedError, TransactionOutcomeUnknownError } from '../../src/errors.js';

const gateway = stubGateway;

const post = (app: ReturnType<typeof buildGateway>, body: unknown, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: '/v1/transactions',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });

function assertProblem(res: { statusCode: number; headers: Record<string, unknown>; body: string }, status: number, code: string) {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const doc = JSON.parse(res.body);
  assert.equal(doc.status, status);
  assert.equal(doc.code, code);
  assert.match(doc.type, /^\/problems\/[a-z-]+$/);
  assert.equal(typeof doc.title, 'string');
  assert.equal(typeof doc.detail, 'string');
  assert.match(doc.instance, /^urn:uuid:/);
  assert.ok(!('stack' in doc));
  return doc;
}

test('commits: converts key/value/headers, answers offsets in request order as strings', async () => {
  const { app, calls } = gateway();
  const res = await post(app, {
    records: [
      { topic: 'orders', key: 'k1', value: { b: 1, a: [true, null] }, headers: { h: 'v' }, partition: 2 },
      { topic: 'audit', keyBase64: Buffer.from([0, 255]).toString('base64'), valueBase64: Buffer.from('raw').toString('base64') },
      { topic: 'orders', value: null },
      { topic: 'orders' },
    ],
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json(), {
    status: 'committed',
    records: [
      { topic: 'orders', partition: 2, offset: '0' },
      { topic: 'audit', partition: 0, offset: '1' },
      { topic: 'orders', partition: 0, offset: '2' },
      { topic: 'orders', partition: 0, offset: '3' },
    ],
  });
  assert.equal(res.headers['idempotent-replayed'], undefined);
  const [sent] = calls;
  assert.ok(sent);
  assert.equal(sent.idempotency, undefined);
  const [r0, r1, r2, r3] = sent.records;
  assert.equal(r0!.key!.toString(), 'k1');
  assert.equal(r0!.value!.toString(), '{"b":1,"a":[true,null]}');
  assert.deepEqual(r0!.headers, { h: 'v' });
  assert.equal(r0!.partition, 2);
  assert.deepEqual([...r1!.key!], [0, 255]);
  assert.equal(r1!.value!.toString(), 'raw');
  assert.equal(r1!.partition, undefined);
  assert.equal(r2!.value!.toString(), 'null', 'value: null is the JSON text null');
  assert.equal(r3!.value, null, 'no value at all is a null value (tombstone)');
});

test('400 with JSON pointers for each bad field', async () => {
  const { app, calls } = gateway();
  const res = await post(app, {
    records: [
      { topic: 'orders', key: 'a', keyBase64: 'YQ==' },
      { topic: 'bad topic!', partition: -1 },
      { value: 1, vaule: 2 },
      { topic: 'orders', valueBase64: 'not base64', value: 3, headers: { h: 5 } },
    ],
  });
  const doc = assertProblem(res, 400, 'TXGATE_INVALID_REQUEST');
  const pointers = doc.errors.map((e: { pointer: string }) => e.pointer).sort();
  assert.deepEqual(
    pointers,
    [
      '/records/0/keyBase64',
      '/records/1/partition',
      '/records/1/topic',
      '/records/2/topic',
      '/records/2/vaule',
      '/records/3/headers/h',
      '/records/3/valueBase64',
      '/records/3/valueBase64',
    ].sort(),
  );
  assert.ok(doc.errors.some((e: { detail: string }) => /either "key" or "keyBase64"/.test(e.detail)));
  assert.ok(doc.errors.some((e: { detail: string }) => /unknown field "vaule"/.test(e.detail)));
  assert.equal(calls.length, 0);
});

test('400 for an empty records array, a missing records field, and a non-object body', async () => {
  const { app } = gateway();
  let doc = assertProblem(await post(app, { records: [] }), 400, 'TXGATE_INVALID_REQUEST');
  assert.deepEqual(doc.errors, [{ pointer: '/records', detail: 'must contain at least one record' }]);
  doc = assertProblem(await post(app, {}), 400, 'TXGATE_INVALID_REQUEST');
  assert.deepEqual(doc.errors, [{ pointer: '/records', detail: '"records" is required' }]);
  doc = assertProblem(await post(app, [1]), 400, 'TXGATE_INVALID_REQUEST');
  assert.equal(doc.errors[0].pointer, '');
  assertProblem(await post(app, '{"records": ['), 400, 'TXGATE_INVALID_JSON');
  assertProblem(await post(app, ''), 400, 'TXGATE_INVALID_JSON');
});

test('415 for a body that is not JSON', async () => {
  const { app } = gateway();
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
    const res = await app.inject({ method: 'POST', url: '/v1/transactions', headers: { 'content-type': type }, payload: 'records=1' });
    assertProblem(res, 415, 'TXGATE_UNSUPPORTED_MEDIA_TYPE');
  }
  // charset parameters are fine
  const ok = await post(app, { records: [{ topic: 'orders' }] }, { 'content-type': 'application/json; charset=utf-8' });
  assert.equal(ok.statusCode, 200);
});

test('413 for a body over the limit and for each per-record limit', async () => {
  const { app, calls } = gateway({ limits: { maxBodyBytes: 2000, maxRecords: 3, maxRecordBytes: 100, maxHeadersPerRecord: 2 } });
  assertProblem(await post(app, { records: [{ topic: 'orders', value: 'x'.repeat(3000) }] }), 413, 'TXGATE_BODY_TOO_LARGE');
  const many = await post(app, { records: Array.from({ length: 4 }, () => ({ topic: 'orders' })) });
  assertProblem(many, 413, 'TXGATE_TOO_MANY_RECORDS');
  const big = assertProblem(await post(app, { records: [{ topic: 'orders' }, { topic: 'orders', key: 'k', value: 'v'.repeat(100) }] }), 413, 'TXGATE_RECORD_TOO_LARGE');
  assert.deepEqual(big.errors.map((e: { pointer: string }) => e.pointer), ['/records/1']);
  // base64 counts decoded bytes: 99 raw bytes fit, 101 do not
  assert.equal((await post(app, { records: [{ topic: 'orders', valueBase64: Buffer.alloc(99).toString('base64') }] })).statusCode, 200);
  assertProblem(await post(app, { records: [{ topic: 'orders', valueBase64: Buffer.alloc(101).toString('base64') }] }), 413, 'TXGATE_RECORD_TOO_LARGE');
  const headers = assertProblem(await post(app, { records: [{ topic: 'orders', headers: { a: '1', b: '2', c: '3' } }] }), 413, 'TXGATE_TOO_MANY_HEADERS');
  assert.equal(headers.errors[0].pointer, '/records/0/headers');
  assert.equal(calls.length, 1);
});

test('404 for unknown topics and partitions, with pointers; topic lookups are cached', async () => {
  const { service, calls } = stubService();
  const { source, asked } = memorySource({ orders: 3 });
  const app = buildGateway({ service, topics: new TopicCatalog(source) });
  const unknown = assertProblem(await post(app, { records: [{ topic: 'orders' }, { topic: 'nope' }, { topic: 'nope' }] }), 404, 'TXGATE_UNKNOWN_TOPIC');
  assert.deepEqual(unknown.errors.map((e: { pointer: string }) => e.pointer), ['/records/1/topic', '/records/2/topic']);
  assert.match(unknown.detail, /"nope"/);
  const part = assertProblem(await post(app, { records: [{ topic: 'orders', partition: 3 }] }), 404, 'TXGATE_UNKNOWN_PARTITION');
  assert.deepEqual(part.errors.map((e: { pointer: string }) => e.pointer), ['/records/0/partition']);
  assert.match(part.detail, /3 partitions/);
  const before = asked.length;
  assert.equal((await post(app, { records: [{ topic: 'orders', partition: 2 }] })).statusCode, 200);
  assert.equal((await post(app, { records: [{ topic: 'orders' }] })).statusCode, 200);
  assert.equal(asked.length, before, 'known topics are served from the cache');
  assert.equal(calls.length, 2);
});

test('503 kafka-unavailable with Retry-After when topic metadata cannot be read', async () => {
  const { service } = stubService();
  const app = buildGateway({ service, topics: new TopicCatalog(memorySource({}, { failing: true }).source) });
  const res = await post(app, { records: [{ topic: 'orders' }] });
  assertProblem(res, 503, 'TXGATE_KAFKA_UNAVAILABLE');
  assert.equal(res.headers['retry-after'], '2');
});

test('403 for internal topics, even without auth', async () => {
  const { app, calls } = gateway();
  for (const topic of ['txgate.idempotency', '__consumer_offsets', '__transaction_state']) {
    const doc = assertProblem(await post(app, { records: [{ topic: 'orders' }, { topic }] }), 403, 'TXGATE_INTERNAL_TOPIC');
    assert.deepEqual(doc.errors, [{ pointer: '/records/1/topic', detail: `"${topic}" is an internal topic` }]);
  }
  assert.equal(calls.length, 0);
});

test('Idempotency-Key: validated, fingerprinted independent of key order, replay header', async () => {
  let replay = false;
  const { service, calls } = stubService(async () => ({ replayed: replay }));
  const app = buildGateway({ service, topics: new TopicCatalog(memorySource({ orders: 1, audit: 1 }).source) });
  for (const bad of ['', 'x'.repeat(256), 'caf\u00e9', 'tab\there']) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/transactions',
      headers: { 'content-type': 'application/json', 'idempotency-key': bad },
      payload: JSON.stringify({ records: [{ topic: 'orders' }] }),
    });
    // Node's HTTP parser itself rejects some raw header bytes; whatever reaches us must be refused.
    assertProblem(res, 400, 'TXGATE_INVALID_IDEMPOTENCY_KEY');
  }
  assert.equal(calls.length, 0);
  const a = await post(app, { records: [{ topic: 'orders', value: { x: 1, y: 2 }, key: 'k' }] }, { 'idempotency-key': 'order-42' });
  assert.equal(a.statusCode, 200);
  replay = true;
  const b = await app.inject({
    method: 'POST',
    url: '/v1/transactions',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'order-42' },
    payload: '{ "records": [ { "key": "k", "value": { "y": 2, "x": 1 }, "topic": "orders" } ] }',
  });
  assert.equal(b.statusCode, 200);
  assert.equal(b.headers['idempotent-replayed'], 'true');
  assert.equal(calls[0]!.idempotency!.key, 'order-42', 'unscoped without auth');
  assert.equal(calls[0]!.idempotency!.fingerprint, calls[1]!.idempotency!.fingerprint);
  assert.equal(calls[0]!.idempotency!.fingerprint, requestFingerprint({ records: [{ topic: 'orders', key: 'k', value: { y: 2, x: 1 } }] }));
  assert.match(calls[0]!.idempotency!.fingerprint, /^[0-9a-f]{64}$/);
  assert.ok(calls[0]!.signal instanceof AbortSignal);
});

test('service errors map to their problems', async () => {
  const unknownErr = new TransactionOutcomeUnknownError('commit timed out');
  const rejected = Object.assign(new TxGateError('TXGATE_RECORD_REJECTED', 'Broker: Invalid record'), { recordIndex: 1, kafkaCode: 87, kafkaCodeName: 'INVALID_RECORD' });
  const tooBig = Object.assign(new TxGateError('TXGATE_RECORD_REJECTED', 'Broker: Message size too large'), { recordIndex: 0, kafkaCode: 10, kafkaCodeName: 'MSG_SIZE_TOO_LARGE' });
  const cases: Array<[unknown, number, string, string | undefined]> = [
    [new TxGateError('TXGATE_IDEMPOTENCY_IN_FLIGHT', 'in flight'), 409, 'TXGATE_IDEMPOTENCY_IN_FLIGHT', '1'],
    [new TxGateError('TXGATE_IDEMPOTENCY_MISMATCH', 'mismatch'), 422, 'TXGATE_IDEMPOTENCY_MISMATCH', undefined],
    [rejected, 422, 'TXGATE_RECORD_REJECTED', undefined],
    [tooBig, 413, 'TXGATE_RECORD_TOO_LARGE', undefined],
    [new TxGateError('TXGATE_IDEMPOTENCY_UNAVAILABLE', 'catch-up timed out'), 503, 'TXGATE_IDEMPOTENCY_UNAVAILABLE', '1'],
    [new PoolSaturatedError(10, 10), 503, 'TXGATE_POOL_SATURATED', '1'],
    [new AcquireTimeoutError(5000), 503, 'TXGATE_ACQUIRE_TIMEOUT', '1'],
    [new PoolClosedError(), 503, 'TXGATE_SHUTTING_DOWN', '5'],
    [new TransactionAbortedError('Broker: fenced'), 500, 'TXGATE_TRANSACTION_ABORTED', undefined],
    [unknownErr, 504, 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN', undefined],
    [new Error('kaboom at /secret/path.ts:12'), 500, 'TXGATE_INTERNAL', undefined],
  ];
  for (const [error, status, code, retryAfter] of cases) {
    const { service } = stubService(async () => {
      throw error;
    });
    const app = buildGateway({ service, topics: new TopicCatalog(memorySource({ orders: 1 }).source) });
    const res = await post(app, { records: [{ topic: 'orders' }, { topic: 'orders' }] }, { 'idempotency-key': 'k' });
    const doc = assertProblem(res, status, code);
    assert.equal(res.headers['retry-after'], retryAfter, code);
    assert.doesNotMatch(res.body, /secret|kaboom|at .*\.ts/, 'no internals leak');
    if (code === 'TXGATE_RECORD_REJECTED') {
      assert.deepEqual(doc.errors[0].pointer, '/records/1');
      assert.equal(doc.kafkaCodeName, 'INVALID_RECORD');
    }
    if (code === 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN') assert.match(doc.detail, /same Idempotency-Key/);
  }
});

test('504 without an Idempotency-Key warns that a retry may duplicate', async () => {
  const { service } = stubService(async () => {
    throw new TransactionOutcomeUnknownError('commit timed out');
  });
  const app = buildGateway({ service, topics: new TopicCatalog(memorySource({ orders: 1 }).source) });
  const doc = assertProblem(await post(app, { records: [{ topic: 'orders' }] }), 504, 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN');
  assert.match(doc.detail, /without an Idempotency-Key a retry may write them twice/);
});

test('auth: 401 without or with a wrong token, 403 outside the allowlist, keys scoped by principal', async () => {
  const apiKeys = [
    { name: 'orders-svc', token: 'orders-token-0123456789', topics: ['orders', 'audit.*'] },
    { name: 'admin', token: 'admin-token-0123456789ab', topics: ['*'] },
  ];
  const { service, calls } = stubService();
  const app = buildGateway({ service, apiKeys, topics: new TopicCatalog(memorySource({ orders: 1, 'audit.eu': 1, billing: 1, 'txgate.idempotency': 1 }).source) });
  const body = { records: [{ topic: 'orders' }] };
  let res = await post(app, body);
  assertProblem(res, 401, 'TXGATE_UNAUTHORIZED');
  assert.equal(res.headers['www-authenticate'], 'Bearer realm="txgate"');
  res = await post(app, body, { authorization: 'Bearer wrong-token-0123456789' });
  assertProblem(res, 401, 'TXGATE_UNAUTHORIZED');
  assert.match(String(res.headers['www-authenticate']), /invalid_token/);
  assertProblem(await post(app, body, { authorization: 'Basic b3JkZXJzOng=' }), 401, 'TXGATE_UNAUTHORIZED');
  // 401 comes before the body is even looked at
  assertProblem(await post(app, 'not json'), 401, 'TXGATE_UNAUTHORIZED');

  const orders = { authorization: 'Bearer orders-token-0123456789' };
  assert.equal((await post(app, { records: [{ topic: 'orders' }, { topic: 'audit.eu' }] }, orders)).statusCode, 200);
  const forbidden = assertProblem(await post(app, { records: [{ topic: 'orders' }, { topic: 'billing' }] }, orders), 403, 'TXGATE_TOPIC_FORBIDDEN');
  assert.deepEqual(forbidden.errors, [{ pointer: '/records/1/topic', detail: 'API key "orders-svc" may not write to "billing"' }]);
  // 403 for a forbidden topic even if it does not exist: no probing of topic names
  assertProblem(await post(app, { records: [{ topic: 'secret-missing' }] }, orders), 403, 'TXGATE_TOPIC_FORBIDDEN');

  const admin = { authorization: 'bearer admin-token-0123456789ab' };
  assert.equal((await post(app, { records: [{ topic: 'billing' }] }, { ...admin, 'idempotency-key': 'k1' })).statusCode, 200);
  assertProblem(await post(app, { records: [{ topic: 'txgate.idempotency' }] }, admin), 403, 'TXGATE_INTERNAL_TOPIC');
  assert.equal((await post(app, { records: [{ topic: 'orders' }] }, { ...orders, 'idempotency-key': 'k1' })).statusCode, 200);
  const keys = calls.filter((c) => c.idempotency).map((c) => c.idempotency!.key);
  assert.deepEqual(keys, ['admin/k1', 'orders-svc/k1']);
  // health, metrics and the document stay open
  for (const url of ['/healthz', '/openapi.json', '/metrics']) assert.equal((await app.inject({ url })).statusCode, 200, url);
});

test('draining: new transactions get 503 shutting-down, readyz goes 503', async () => {
  const state = new GatewayState();
  const { app, calls } = gateway({ state });
  assert.equal((await app.inject({ url: '/readyz' })).statusCode, 200);
  state.draining = true;
  const res = await post(app, { records: [{ topic: 'orders' }] });
  assertProblem(res, 503, 'TXGATE_SHUTTING_DOWN');
  assert.equal(res.headers['retry-after'], '5');
  const ready = await app.inject({ url: '/readyz' });
  const doc = assertProblem(ready, 503, 'TXGATE_NOT_READY');
  assert.equal(doc.checks.draining, true);
  assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
  assert.equal(calls.length, 0);
});

test('readyz: 503 when Kafka is unreachable or the pool cannot lend', async () => {
  const { service } = stubService();
  const down = buildGateway({ service, topics: new TopicCatalog(memorySource({}, { failing: true }).source) });
  const doc = assertProblem(await down.inject({ url: '/readyz' }), 503, 'TXGATE_NOT_READY');
  assert.match(doc.checks.kafka, /unreachable \(broker down\)/);

  const stats = { size: 2, idle: 0, busy: 0, replacing: 2, waiting: 0, maxWaiting: 128, closed: false, slots: [], counters: { committed: 0, aborted: 0, outcomeUnknown: 0, retries: 0, replacements: 0, rejected: 0 } };
  const pool = { stats: () => stats };
  const app = buildGateway({ service, pool, topics: new TopicCatalog(memorySource({}).source) });
  assertProblem(await app.inject({ url: '/readyz' }), 503, 'TXGATE_NOT_READY');
  stats.replacing = 1;
  stats.idle = 1;
  const ok = await app.inject({ url: '/readyz' });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json(), { status: 'ready', checks: { draining: false, pool: 'ok', kafka: 'ok' } });
  stats.closed = true;
  assertProblem(await app.inject({ url: '/readyz' }), 503, 'TXGATE_NOT_READY');
});

test('unknown routes and methods are problem documents too', async () => {
  const { app } = gateway();
  assertProblem(await app.inject({ url: '/v2/nothing' }), 404, 'TXGATE_NOT_FOUND');
  const get = await app.inject({ url: '/v1/transactions' });
  assertProblem(get, 405, 'TXGATE_METHOD_NOT_ALLOWED');
  assert.equal(get.headers['allow'], 'POST');
  assertProblem(await app.inject({ method: 'DELETE', url: '/healthz' }), 405, 'TXGATE_METHOD_NOT_ALLOWED');
});

test('metrics: HTTP counts by route template and status, and service stats', async () => {
  const registry = new Registry();
  const { app } = gateway({ registry });
  await post(app, { records: [{ topic: 'orders' }] });
  await post(app, { records: [] });
  await app.inject({ url: '/nowhere/at/all' });
  const text = (await app.inject({ url: '/metrics' })).body;
  assert.match(text, /txgate_http_requests_total\{method="POST",route="\/v1\/transactions",status="200"\} 1/);
  assert.match(text, /txgate_http_requests_total\{method="POST",route="\/v1\/transactions",status="400"\} 1/);
  assert.match(text, /txgate_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
  assert.match(text, /txgate_http_request_duration_seconds_bucket\{le="\+Inf",method="POST",route="\/v1\/transactions",status="200"\} 1/);
  assert.match(text, /txgate_gateway_transactions_total 7/);
  assert.match(text, /txgate_gateway_batched_requests_total 2/);
  assert.match(text, /txgate_gateway_pending_requests 0/);
});

test('a client that disconnects aborts the signal passed to the service', async () => {
  let seen: AbortSignal | undefined;
  const { service } = stubService(async (req) => {
    seen = req.signal;
    await new Promise<void>((resolve) => req.signal!.addEventListener('abort', () => resolve(), { once: true }));
    throw new TxGateError('TXGATE_ACQUIRE_ABORTED', 'gone');
  });
  const app = buildGateway({ service, topics: new TopicCatalog(memorySource({ orders: 1 }).source) });
  await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const address = app.server.address();
    assert.ok(address && typeof address === 'object');
    // A raw socket, so "going away" is exactly a closed TCP connection.
    const body = JSON.stringify({ records: [{ topic: 'orders' }] });
    const socket = net.connect(address.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(`POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const deadline = Date.now() + 5000;
    while (!seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(seen, 'the request reached the service');
    socket.destroy();
    while (!seen.aborted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.aborted, true);
  } finally {
    await app.close();
  }
});
