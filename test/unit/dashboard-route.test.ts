/** GET /, /dashboard, its files and GET /v1/stats, through fastify.inject: auth off and on, counting, headers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { StatsSchema } from '../../src/gateway/http/dashboard/schema.js';
import type { PoolStats } from '../../src/pool/types.js';
import { stubGateway } from '../support/gateway-stubs.js';
import { waitFor } from '../support/wait.js';

const TOKEN = 'dashboard-token-0123456789';
const KEYS = [{ name: 'limited', token: TOKEN, topics: ['orders'] }];
const auth = { authorization: `Bearer ${TOKEN}` };

const pool = {
  stats: (): PoolStats => ({
    size: 2,
    idle: 1,
    busy: 1,
    replacing: 0,
    waiting: 0,
    maxWaiting: 128,
    closed: false,
    slots: [
      { slot: 0, transactionalId: 'txgate-secret-instance-0', state: 'idle', stateSince: Date.now(), transactions: 3, replacements: 0 },
      { slot: 1, transactionalId: 'txgate-secret-instance-1', state: 'busy', stateSince: Date.now(), transactions: 4, replacements: 0 },
    ],
    counters: { committed: 7, aborted: 1, outcomeUnknown: 0, retries: 0, replacements: 0, rejected: 0 },
  }),
};

const post = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST' as const, url: '/v1/transactions', headers, payload: body as object });

test('without API keys: the page and /v1/stats are open, and requests and problems are counted', async (t) => {
  const { app } = stubGateway({ pool, version: '9.9.9' });
  t.after(() => app.close());
  for (let i = 0; i < 3; i++) assert.equal((await app.inject(post({ records: [{ topic: 'orders', value: i }] }))).statusCode, 200);
  assert.equal((await app.inject(post({ records: [{ topic: 'missing', value: 1 }] }))).statusCode, 404);
  assert.equal((await app.inject({ url: '/nothing-here' })).statusCode, 404);

  const res = await app.inject({ url: '/v1/stats' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['cache-control'], 'no-store');
  const s = res.json();
  assert.ok(Value.Check(StatsSchema, s), JSON.stringify([...Value.Errors(StatsSchema, s)].slice(0, 3)));
  assert.equal(s.version, '9.9.9');
  assert.equal(s.auth, false);
  // The pool's and the service's own counters (what /metrics reads), and the HTTP answers seen here.
  assert.equal(s.totals.committed, 7);
  assert.equal(s.totals.requests, 9);
  assert.equal(s.totals.httpRequests, 4);
  assert.equal(s.totals.httpErrors, 1);
  assert.ok(s.latency.count <= 4, 'latencies count once their interval has closed');
  assert.deepEqual(
    s.errors.map((e: { code: string; count: number; route: string }) => [e.code, e.count, e.route]),
    [
      ['TXGATE_NOT_FOUND', 1, 'unmatched'],
      ['TXGATE_UNKNOWN_TOPIC', 1, '/v1/transactions'],
    ],
  );
  // Never a topic name: not even the one a request asked for.
  assert.doesNotMatch(res.body, /missing|orders/);
  assert.deepEqual(
    s.pool!.slots.map((slot) => slot.transactionalId),
    ['txgate-secret-instance-0', 'txgate-secret-instance-1'],
  );

  // The sampler closes an interval every second; the latency window then holds the four POSTs.
  const sampled = await waitFor(
    async () => {
      const body = (await app.inject({ url: '/v1/stats' })).json();
      return body.series.lastSeq >= 1 && body.latency.count === 4 ? body : undefined;
    },
    { timeoutMs: 5_000, intervalMs: 100, what: 'a sampled interval holding the four POSTs' },
  );
  assert.ok(Value.Check(StatsSchema, sampled));
  assert.ok(sampled.series.httpRequests.some((rate) => rate !== null && rate > 0));
  const newer = (await app.inject({ url: `/v1/stats?since=${sampled.series.lastSeq}` })).json();
  assert.ok(newer.series.firstSeq > sampled.series.lastSeq);
});

test('with API keys: /v1/stats needs a valid key; the page is served but holds no data', async (t) => {
  const { app } = stubGateway({ pool, apiKeys: KEYS });
  t.after(() => app.close());

  for (const headers of [{}, { authorization: 'Bearer not-a-valid-token-at-all' }, { authorization: 'Basic abc' }]) {
    const res = await app.inject({ url: '/v1/stats', headers });
    assert.equal(res.statusCode, 401, JSON.stringify(headers));
    assert.match(String(res.headers['www-authenticate']), /^Bearer/);
    assert.doesNotMatch(res.body, /secret-instance/);
    assert.equal(res.json().code, 'TXGATE_UNAUTHORIZED');
  }
  const ok = await app.inject({ url: '/v1/stats', headers: auth });
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().auth, true);
  // Any valid key, whatever its topics: the stats name none.
  assert.match(ok.body, /txgate-secret-instance-0/);

  for (const url of ['/', '/dashboard', '/dashboard/assets/dashboard.js', '/dashboard/assets/uPlot.min.js']) {
    const res = await app.inject({ url });
    assert.equal(res.statusCode, 200, url);
    assert.doesNotMatch(res.body, /secret-instance/, url);
  }
  // The unauthorised asks are in the errors by code, which only a key holder reads.
  const s = (await app.inject({ url: '/v1/stats', headers: auth })).json();
  assert.deepEqual(
    s.errors.map((e: { code: string; count: number; route: string }) => [e.code, e.count, e.route]),
    [['TXGATE_UNAUTHORIZED', 3, '/v1/stats']],
  );
});

test('the page and its files: types, a strict Content-Security-Policy, revalidation, 404 for others', async (t) => {
  const { app } = stubGateway();
  t.after(() => app.close());
  const page = await app.inject({ url: '/dashboard' });
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  const csp = String(page.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal((await app.inject({ url: '/' })).body, page.body);
  // Every file the page asks for is relative (works behind a path prefix) and served here: no CDN.
  const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((r) => !r.startsWith('data:'));
  assert.ok(refs.length >= 4);
  for (const ref of refs) {
    assert.doesNotMatch(ref, /^(\/|[a-z]+:)/, ref);
    const res = await app.inject({ url: `/${ref}` });
    assert.equal(res.statusCode, 200, ref);
    assert.match(String(res.headers['content-type']), ref.endsWith('.css') ? /^text\/css/ : /^text\/javascript/, ref);
  }
  const js = await app.inject({ url: '/dashboard/assets/uPlot.min.js' });
  assert.match(js.body, /uPlot/);
  const again = await app.inject({ url: '/dashboard/assets/uPlot.min.js', headers: { 'if-none-match': String(js.headers.etag) } });
  assert.equal(again.statusCode, 304);
  assert.equal(again.body, '');

  const missing = await app.inject({ url: '/dashboard/assets/../../package.json' });
  assert.equal(missing.statusCode, 404);
  assert.equal((await app.inject({ url: '/dashboard/assets/secrets.js' })).statusCode, 404);
  assert.equal((await app.inject({ method: 'POST', url: '/dashboard' })).statusCode, 405);
});

test('since must be a sequence number', async (t) => {
  const { app } = stubGateway();
  t.after(() => app.close());
  for (const since of ['-1', 'abc', '1.5', '1e3', '']) {
    const res = await app.inject({ url: `/v1/stats?since=${since}` });
    assert.equal(res.statusCode, 400, since);
    assert.equal(res.json().code, 'TXGATE_INVALID_REQUEST');
  }
  assert.equal((await app.inject({ url: '/v1/stats?since=0' })).statusCode, 200);
});
