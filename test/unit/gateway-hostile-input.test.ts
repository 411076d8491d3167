// Hostile and malformed input through the HTTP layer: every rejection is a problem+json with the
// right status, decided before any work, and nothing reaches the transaction service.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stubGateway } from '../support/gateway-stubs.js';

const json = { 'content-type': 'application/json' };

test('a value nested 100,000 levels deep is a 400 with a pointer, not a stack overflow', async () => {
  const { app, calls } = stubGateway();
  const depth = 100_000;
  const payload = `{"records":[{"topic":"orders","value":1},{"topic":"orders","value":${'['.repeat(depth)}${']'.repeat(depth)}}]}`;
  const res = await app.inject({ method: 'POST', url: '/v1/transactions', headers: json, payload });
  assert.equal(res.statusCode, 400, res.body);
  assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
  const problem = res.json() as { code: string; errors: Array<{ pointer: string }> };
  assert.equal(problem.code, 'TXGATE_VALUE_TOO_DEEP');
  assert.deepEqual(problem.errors.map((e) => e.pointer), ['/records/1/value']);
  assert.equal(calls.length, 0);
  // The same depth in an object, and with an Idempotency-Key (the fingerprint recurses too).
  const objects = `{"records":[{"topic":"orders","value":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}]}`;
  const res2 = await app.inject({ method: 'POST', url: '/v1/transactions', headers: { ...json, 'idempotency-key': 'k1' }, payload: objects });
  assert.equal(res2.statusCode, 400, res2.body);
  assert.equal((res2.json() as { code: string }).code, 'TXGATE_VALUE_TOO_DEEP');
  await app.close();
});

test('a value at the depth limit is accepted, fingerprinted and sent', async () => {
  const { app, calls } = stubGateway();
  const depth = 1000;
  const payload = `{"records":[{"topic":"orders","value":${'['.repeat(depth)}${']'.repeat(depth)}}]}`;
  const res = await app.inject({ method: 'POST', url: '/v1/transactions', headers: { ...json, 'idempotency-key': 'k2' }, payload });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.records[0]!.value!.length, 2 * depth);
  await app.close();
});
