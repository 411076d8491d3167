/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real
 * gateway process on the test broker, with API keys on: the page asks for a key and shows nothing
 * before it; with one, its figures move under load and, once the load stops, equal what /metrics
 * reports. At a phone's width nothing overflows sideways. It saves the screenshots the README
 * shows (docs/dashboard.png, docs/dashboard-phone.png).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createTopics, testBootstrap, uniqueName, waitFor } from '../support/kafka.js';
import { freePort, GatewayProcess } from '../support/gateway-process.js';

// The page's globals, for the functions that run in the browser (the project's lib has no DOM types).
declare const document: any;
declare const window: any;

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const DOCS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs');
const TOKEN = 'dashboard-admin-token-0123456789';
const KEY_STORAGE = 'txgate.dashboard.apiKey';
const POOL_SIZE = 2;

const bootstrap = testBootstrap();
const instanceId = uniqueName('dash');
const topic = uniqueName('dash-orders');
let gw: GatewayProcess;
let browser: Browser;

/** The sum of a metric's samples whose labels include all of `labels`. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[3]);
      found = true;
    }
  }
  assert.ok(found, `/metrics has no ${name} ${JSON.stringify(labels)}`);
  return total;
}

async function metrics(): Promise<string> {
  return (await fetch(`${gw.url}/metrics`)).text();
}

/** `total` POSTs, `concurrency` at a time; every fourth carries an Idempotency-Key. Returns the statuses. */
async function drive(total: number, concurrency: number, opts: { topic?: string } = {}): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` };
      if (i % 4 === 0) headers['idempotency-key'] = uniqueName('key');
      const res = await fetch(`${gw.url}/v1/transactions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ records: [{ topic: opts.topic ?? topic, key: `k${i % 16}`, value: { i } }] }),
      });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

/** The raw figure (data-value) an element of the page shows. */
function shown(page: Page, id: string): Promise<number> {
  return page.$eval(`#${id}`, (el: any) => Number(el.dataset['value']));
}

/** A page that records what a dashboard must never do: ask another origin, log an error, throw. */
async function watchedPage(context: BrowserContext): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('request', (req) => {
    if (!req.url().startsWith(gw.url)) problems.push(`request to another origin: ${req.url()}`);
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/401 \(Unauthorized\)/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  return { page, problems };
}

describe('the dashboard in headless Chromium, on a real gateway', () => {
  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: the dashboard test drives Debian's chromium package. ` +
          '`bash scripts/setup.sh` installs it when run as root (npm test runs it), or: sudo apt-get install chromium',
      );
    }
    await createTopics(bootstrap, [{ topic, partitions: 3 }]);
    gw = new GatewayProcess({
      label: 'gateway',
      brokers: bootstrap,
      port: await freePort(),
      instanceId,
      args: ['--pool-size', String(POOL_SIZE), '--idempotency-topic', uniqueName('dash-idem')],
      env: { TXGATE_API_KEYS: `admin:${TOKEN}:*` },
    });
    await gw.ready();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  it('asks for a key, then shows figures that move under load and match /metrics once it stops', { timeout: 300_000 }, async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, problems } = await watchedPage(context);
    await page.goto(`${gw.url}/`);

    // Without a key: a form, and nothing of the gateway's figures or ids anywhere in the page.
    await page.waitForSelector('#login:not([hidden])', { timeout: 15_000 });
    assert.equal(await page.isVisible('#main'), false);
    assert.doesNotMatch(await page.content(), new RegExp(instanceId));
    await page.fill('#key', 'not-the-right-token-0123456789');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => /not accepted/.test(document.getElementById('login-error')!.textContent ?? ''), undefined, { timeout: 15_000 });
    assert.doesNotMatch(await page.content(), new RegExp(instanceId));

    await page.fill('#key', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#main:not([hidden])', { timeout: 15_000 });
    await page.waitForFunction(() => document.getElementById('total-requests')!.dataset['value'] !== undefined, undefined, { timeout: 15_000 });
    assert.equal(await page.$$eval('#slots li', (items) => items.length), POOL_SIZE);
    assert.match(await page.textContent('#slots') ?? '', new RegExp(`txgate-${instanceId}-0`));
    const before = await shown(page, 'total-requests');

    // Light load, then heavier: with more requests than producers, group commit packs them.
    const load = (async () => {
      const light = await drive(300, 4);
      const errors = await drive(5, 1, { topic: uniqueName('no-such-topic') });
      const heavy = await drive(1_200, 32);
      return { ok: [...light, ...heavy], errors };
    })();
    // The page's numbers move while the load runs (no sleeps: each wait is on what the page shows).
    await page.waitForFunction((b) => Number(document.getElementById('total-requests')!.dataset['value']) > b, before, { timeout: 60_000 });
    await page.waitForFunction(() => Number(document.getElementById('tx-rate')!.dataset['value']) > 0, undefined, { timeout: 60_000 });
    await page.waitForFunction(() => Number(document.getElementById('req-per-tx')!.dataset['value']) > 1.2, undefined, { timeout: 120_000 });
    const { ok, errors } = await load;
    assert.deepEqual([...new Set(ok)], [200]);
    assert.deepEqual(errors, [404, 404, 404, 404, 404]);

    // Once every answer is counted, the page (refreshing every second) shows exactly what /metrics says.
    const text = await waitFor(
      async () => {
        const t = await metrics();
        return metric(t, 'txgate_gateway_requests_total') === before + ok.length ? t : undefined;
      },
      { timeoutMs: 10_000, what: '/metrics to count every request' },
    );
    const expected = {
      'total-requests': metric(text, 'txgate_gateway_requests_total'),
      'total-committed': metric(text, 'txgate_pool_transactions_total', { outcome: 'committed' }),
      'total-aborted': metric(text, 'txgate_pool_transactions_total', { outcome: 'aborted' }),
      'total-unknown': metric(text, 'txgate_pool_transactions_total', { outcome: 'unknown' }),
      'total-http': metric(text, 'txgate_http_requests_total', { method: 'POST', route: '/v1/transactions' }),
      'total-http-errors': metric(text, 'txgate_http_requests_total', { method: 'POST', route: '/v1/transactions', status: '404' }),
      keys: metric(text, 'txgate_gateway_idempotency_keys'),
    };
    assert.equal(expected['total-committed'], metric(text, 'txgate_gateway_transactions_total'));
    assert.ok(expected['total-committed'] < expected['total-requests'], 'group commit shared transactions');
    assert.ok(expected.keys >= ok.length / 4);
    await page
      .waitForFunction(
        (want) => Object.entries(want).every(([id, v]) => Number(document.getElementById(id)!.dataset['value']) === v),
        expected,
        { timeout: 15_000 },
      )
      .catch(async (err: unknown) => {
        const got = Object.fromEntries(await Promise.all(Object.keys(expected).map(async (id) => [id, await shown(page, id)])));
        throw new Error(`the page shows ${JSON.stringify(got)}, /metrics ${JSON.stringify(expected)}: ${String(err)}`);
      });

    // Latency, the errors by code and the charts are drawn too.
    assert.ok((await shown(page, 'latency-p50')) > 0);
    assert.ok((await shown(page, 'latency-p99')) >= (await shown(page, 'latency-p50')));
    const rows = await page.$$eval('#errors tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    const unknownTopic = rows.find((r) => r[0] === 'TXGATE_UNKNOWN_TOPIC');
    assert.ok(unknownTopic, JSON.stringify(rows));
    assert.equal(unknownTopic[1], '404');
    assert.equal(unknownTopic[2], '5');
    assert.equal(await page.$$eval('.chart canvas', (canvases) => canvases.length), 4);

    await page.screenshot({ path: path.join(DOCS, 'dashboard.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await context.close();
  });

  it('fits a phone: nothing wider than 390 px', { timeout: 120_000 }, async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    // The key as a previous visit in this tab would have left it.
    await context.addInitScript(([k, v]) => sessionStorage.setItem(k!, v!), [KEY_STORAGE, TOKEN]);
    const { page, problems } = await watchedPage(context);
    await page.goto(`${gw.url}/dashboard`);
    await page.waitForSelector('#main:not([hidden])', { timeout: 15_000 });
    // Two polls: the charts have data and have been laid out at this width.
    await page.waitForFunction(() => Number(document.body.dataset['lastSeq']) > 0, undefined, { timeout: 15_000 });
    const seq = await page.evaluate(() => Number(document.body.dataset['lastSeq']));
    await page.waitForFunction((s) => Number(document.body.dataset['lastSeq']) > s, seq, { timeout: 15_000 });

    const widths = await page.evaluate(() => {
      // The errors table may scroll inside its own box; everything else stays on screen.
      const visible = [...document.querySelectorAll('main *')].filter((el) => !el.closest('.scroll') && el.getClientRects().length > 0);
      const widest = visible.reduce((a, el) => (el.getBoundingClientRect().right > a.right ? { right: el.getBoundingClientRect().right, what: el.outerHTML.slice(0, 80) } : a), { right: 0, what: '' });
      return { viewport: window.innerWidth, document: document.documentElement.scrollWidth, widest };
    });
    assert.equal(widths.viewport, 390);
    assert.ok(widths.document <= widths.viewport, `the page is ${widths.document} px wide`);
    assert.ok(widths.widest.right <= widths.viewport, JSON.stringify(widths));
    const tiles = await page.$$eval('.tile', (els) => els.map((el) => el.getBoundingClientRect().right));
    assert.ok(tiles.every((right) => right <= 390), JSON.stringify(tiles));

    await page.screenshot({ path: path.join(DOCS, 'dashboard-phone.png') });
    assert.deepEqual(problems, []);
    await context.close();
  });
});
