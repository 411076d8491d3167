// Every problem `type` resolves, against the request URL, to a page the gateway serves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROBLEMS, problemType, type ProblemCode } from '../../src/gateway/http/problems.js';
import { PROBLEM_HELP } from '../../src/gateway/http/problem-pages.js';
import { stubGateway } from '../support/gateway-stubs.js';

test('each problem type is a page that names its code, status and what to do', async () => {
  const { app } = stubGateway();
  for (const code of Object.keys(PROBLEMS) as ProblemCode[]) {
    const url = new URL(problemType(code), 'http://gateway.example:8080/v1/transactions');
    assert.equal(url.pathname, `/problems/${PROBLEMS[code].slug}`);
    const res = await app.inject({ method: 'GET', url: url.pathname });
    assert.equal(res.statusCode, 200, `${code}: ${res.body}`);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.ok(res.body.includes(code) && res.body.includes(String(PROBLEMS[code].status)), code);
    assert.ok(PROBLEM_HELP[code].help.length > 20, `${code} says what to do`);
  }
  const index = await app.inject({ method: 'GET', url: '/problems' });
  assert.equal(index.statusCode, 200);
  for (const code of Object.keys(PROBLEMS)) assert.ok(index.body.includes(code));
  await app.close();
});

test('a problem answer links its page, and an unknown slug is the 404 problem', async () => {
  const { app } = stubGateway();
  const res = await app.inject({ method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json' }, payload: '{' });
  const doc = res.json() as { type: string; code: string };
  assert.equal(doc.type, '/problems/invalid-json');
  const page = await app.inject({ method: 'GET', url: doc.type });
  assert.equal(page.statusCode, 200);
  const missing = await app.inject({ method: 'GET', url: '/problems/no-such-problem' });
  assert.equal(missing.statusCode, 404);
  assert.equal((missing.json() as { code: string }).code, 'TXGATE_NOT_FOUND');
  await app.close();
});

test("the pages say what the README's error table says, code by code", async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const rows = new Map<string, { status: string; slug: string; help: string; written: string }>();
  for (const m of readme.matchAll(/^\| (\d{3}) \| `(TXGATE_[A-Z_]+)` \| `([a-z-]+)` \| (.*?) \| ([^|]*) \|$/gm)) {
    rows.set(m[2]!, { status: m[1]!, slug: m[3]!, help: m[4]!.replaceAll('`', ''), written: m[5]!.trim() });
  }
  for (const code of Object.keys(PROBLEMS) as ProblemCode[]) {
    const row = rows.get(code);
    assert.ok(row, `${code} is in the README's table`);
    assert.deepEqual(row, { status: String(PROBLEMS[code].status), slug: PROBLEMS[code].slug, ...PROBLEM_HELP[code] }, code);
  }
  assert.equal(rows.size, Object.keys(PROBLEMS).length, 'and nothing else is');
});
