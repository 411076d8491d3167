import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalJson, requestFingerprint } from '../../src/gateway/http/fingerprint.js';
import { parseIdempotencyKey, scopeIdempotencyKey } from '../../src/gateway/http/idempotency-key.js';
import { HttpProblem } from '../../src/gateway/http/problems.js';

/** The same value with every object's keys in reverse order. */
function reorder(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reorder);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).reverse().map((k) => [k, reorder((value as Record<string, unknown>)[k])]));
  }
  return value;
}

test('the fingerprint ignores key order and whitespace, and nothing else', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const parsed = JSON.parse(JSON.stringify(v)) as unknown;
      assert.equal(requestFingerprint(reorder(parsed)), requestFingerprint(parsed));
      assert.equal(requestFingerprint(JSON.parse(JSON.stringify(parsed, null, 2))), requestFingerprint(parsed));
      // canonical JSON is JSON for the same value
      assert.deepEqual(JSON.parse(canonicalJson(parsed)), parsed);
    }),
  );
  const a = { records: [{ topic: 't', value: 1 }] };
  assert.notEqual(requestFingerprint(a), requestFingerprint({ records: [{ topic: 't', value: 2 }] }));
  assert.notEqual(requestFingerprint(a), requestFingerprint({ records: [{ topic: 't', value: '1' }] }));
  assert.notEqual(requestFingerprint({ records: [1, 2] }), requestFingerprint({ records: [2, 1] }), 'array order matters');
  assert.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: 'x' }), '{"a":"x","b":[1,{"c":2,"d":1}]}');
});

test('Idempotency-Key: 1 to 255 printable ASCII characters', () => {
  assert.equal(parseIdempotencyKey(undefined), undefined);
  assert.equal(parseIdempotencyKey('a'), 'a');
  assert.equal(parseIdempotencyKey('~'.repeat(255)), '~'.repeat(255));
  assert.equal(parseIdempotencyKey('with space'), 'with space');
  for (const bad of ['', 'x'.repeat(256), '\u00e9', 'a\u0000', 'a\tb']) {
    assert.throws(() => parseIdempotencyKey(bad), (e: unknown) => e instanceof HttpProblem && e.code === 'TXGATE_INVALID_IDEMPOTENCY_KEY', JSON.stringify(bad));
  }
  assert.throws(() => parseIdempotencyKey(['a', 'b']), HttpProblem);
  assert.equal(scopeIdempotencyKey('k', undefined), 'k');
  assert.equal(scopeIdempotencyKey('k/x', 'svc'), 'svc/k/x');
});
