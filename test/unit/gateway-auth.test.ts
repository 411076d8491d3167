import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiKeyAuthenticator, parseApiKeys, topicMatcher } from '../../src/gateway/http/auth.js';
import { HttpProblem } from '../../src/gateway/http/problems.js';
import { ConfigurationError } from '../../src/errors.js';

test('parses the compact and the JSON form alike', () => {
  const compact = parseApiKeys('orders:tok-0123456789abcdef:orders,audit.*; admin:tok:with:colons-0123456789:*\n');
  assert.deepEqual(compact, [
    { name: 'orders', token: 'tok-0123456789abcdef', topics: ['orders', 'audit.*'] },
    { name: 'admin', token: 'tok:with:colons-0123456789', topics: ['*'] },
  ]);
  const json = parseApiKeys(JSON.stringify(compact));
  assert.deepEqual(json, compact);
  assert.deepEqual(parseApiKeys('  '), []);
});

test('refuses bad API key configurations with a message naming the problem', () => {
  const cases: Array<[string, RegExp]> = [
    ['orders:short:orders', /at least 16 characters/],
    ['orders:tok-0123456789abcdef', /name:token:topic1,topic2/],
    ['bad/name:tok-0123456789abcdef:x', /name "bad\/name"/],
    ['a:tok-0123456789abcdef:x;a:tok-0123456789abcdeg:y', /used twice/],
    ['a:tok-0123456789abcdef:x;b:tok-0123456789abcdef:y', /share the token/],
    ['a:tok-0123456789abcdef:', /no topics/],
    ['a:tok-0123456789abcdef:or*ders', /not a topic name/],
    ['[{"name":"a"}]', /entry 0 must be/],
    ['[nope', /not valid JSON/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseApiKeys(text), (err: unknown) => err instanceof ConfigurationError && message.test(err.message), text);
  }
});

test('topic allowlists: exact names, prefix globs, and *', () => {
  const m = topicMatcher(['orders', 'audit.*']);
  assert.equal(m('orders'), true);
  assert.equal(m('orders2'), false);
  assert.equal(m('audit.eu'), true);
  assert.equal(m('audit.'), true);
  assert.equal(m('audit'), false);
  assert.equal(topicMatcher(['*'])('anything'), true);
});

test('bearer authentication', () => {
  const auth = new ApiKeyAuthenticator([{ name: 'svc', token: 'tok-0123456789abcdef', topics: ['a'] }]);
  assert.equal(auth.enabled, true);
  assert.equal(auth.authenticate('Bearer tok-0123456789abcdef').name, 'svc');
  assert.equal(auth.authenticate('bearer   tok-0123456789abcdef ').name, 'svc');
  for (const header of [undefined, '', 'Bearer', 'Bearer tok-0123456789abcdeX', 'Basic dG9r', 'Bearer a b']) {
    assert.throws(() => auth.authenticate(header), (e: unknown) => e instanceof HttpProblem && e.status === 401, String(header));
  }
  assert.equal(new ApiKeyAuthenticator([]).enabled, false);
});
