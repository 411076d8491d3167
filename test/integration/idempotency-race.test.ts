// Two gateway processes (different instance ids, one broker, one idempotency topic) receive
// every Idempotency-Key at the same moment, with the same body, as a client behind a load
// balancer that retries on both sides would send it. Each side retries on 409/503/500/504 and
// connection errors until it gets its 200. Every key must be written exactly once: both sides
// answer with the same offset, and a read_committed consumer sees each key once.
// (Before committed claims were tracked, 2 runs in 5 of 4,000 keys wrote 8-16 keys twice.)
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { consumeAll, createTopics, testBootstrap, uniqueName } from '../support/kafka.js';
import { freePort, GatewayProcess } from '../support/gateway-process.js';

/** Raced keys per run (each sent to both gateways): TXGATE_RACE_KEYS, default 20,000. */
const KEYS = Number(process.env.TXGATE_RACE_KEYS) || 20_000;
/** Keys in flight at once (each as two concurrent requests). */
const IN_FLIGHT = 256;
const PARTITIONS = 6;
/** Retry pause for a non-final answer: a retrying client, faster than Retry-After asks, to press the race. */
const RETRY_PAUSE_MS = 25;
const GIVE_UP_MS = 120_000;

interface Answer {
  partition: number;
  offset: string;
  replayed: boolean;
  retries: Map<string, number>;
}

const bootstrap = testBootstrap();
const topic = uniqueName('race');
const idempotencyTopic = uniqueName('race-idem');
let gateways: GatewayProcess[] = [];

before(async () => {
  await createTopics(bootstrap, [{ topic, partitions: PARTITIONS }]);
  gateways = await Promise.all(
    ['a', 'b'].map(async (name) => {
      const gw = new GatewayProcess({
        label: `gateway ${name}`,
        brokers: bootstrap,
        port: await freePort(),
        instanceId: uniqueName(`race-${name}`),
        args: ['--idempotency-topic', idempotencyTopic, '--pool-size', '8'],
      });
      return gw;
    }),
  );
  // One after the other: the first creates the idempotency topic.
  for (const gw of gateways) await gw.ready();
});

after(async () => {
  await Promise.all(gateways.map((gw) => gw.kill('SIGTERM')));
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** POSTs until a 200; any answer that is not final for a keyed request is retried with the same key and body. */
async function sendUntilCommitted(url: string, key: string, body: string): Promise<Answer> {
  const retries = new Map<string, number>();
  const deadline = Date.now() + GIVE_UP_MS;
  for (;;) {
    let status: string;
    try {
      const res = await fetch(`${url}/v1/transactions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body,
        signal: AbortSignal.timeout(30_000),
      });
      const json = (await res.json()) as { records?: Array<{ partition: number; offset: string }>; code?: string };
      if (res.status === 200) {
        const r = json.records![0]!;
        return { partition: r.partition, offset: r.offset, replayed: res.headers.get('idempotent-replayed') === 'true', retries };
      }
      if (![409, 429, 500, 503, 504].includes(res.status)) throw new Error(`${key}: definitive ${res.status} ${JSON.stringify(json)}`);
      status = `${res.status} ${json.code ?? ''}`.trim();
    } catch (err) {
      if (err instanceof Error && err.message.includes('definitive')) throw err;
      status = 'conn';
    }
    retries.set(status, (retries.get(status) ?? 0) + 1);
    if (Date.now() > deadline) throw new Error(`${key}: no final answer in ${GIVE_UP_MS} ms (last: ${status})`);
    await sleep(RETRY_PAUSE_MS);
  }
}

it(`two gateways racing on ${KEYS} keys write each exactly once`, { timeout: 900_000 }, async () => {
  const [a, b] = gateways as [GatewayProcess, GatewayProcess];
  const run = uniqueName('r');
  const mismatched: string[] = [];
  const retries = new Map<string, number>();
  let replayed = 0;
  let next = 0;
  const started = Date.now();
  const worker = async (): Promise<void> => {
    for (let i = next++; i < KEYS; i = next++) {
      const key = `${run}-${i}`;
      const body = JSON.stringify({ records: [{ topic, key, value: { key, i } }] });
      const [x, y] = await Promise.all([sendUntilCommitted(a.url, key, body), sendUntilCommitted(b.url, key, body)]);
      if (x.partition !== y.partition || x.offset !== y.offset) mismatched.push(`${key}: ${x.partition}/${x.offset} vs ${y.partition}/${y.offset}`);
      replayed += Number(x.replayed) + Number(y.replayed);
      for (const r of [x.retries, y.retries]) for (const [s, n] of r) retries.set(s, (retries.get(s) ?? 0) + n);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const seconds = (Date.now() - started) / 1000;

  const records = await consumeAll(bootstrap, topic, { isolation: 'read_committed', timeoutMs: 120_000 });
  const seen = new Map<string, number>();
  for (const r of records) {
    const key = r.key?.toString() ?? '';
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  const duplicated = [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} x${n}`);
  const missing = KEYS - [...seen.keys()].filter((k) => k.startsWith(`${run}-`)).length;
  const retried = [...retries].map(([s, n]) => `${s}: ${n}`).join(', ') || 'none';
  console.log(
    `race: ${KEYS} keys x 2 gateways in ${seconds.toFixed(1)} s (${Math.round((2 * KEYS) / seconds)} req/s); ` +
      `replayed answers ${replayed}; non-final answers retried: ${retried}; ` +
      `duplicated ${duplicated.length}, missing ${missing}, mismatched answers ${mismatched.length}`,
  );
  assert.deepEqual(duplicated.slice(0, 20), [], 'no key written twice');
  assert.deepEqual(mismatched.slice(0, 20), [], 'both gateways answer each key with the same record');
  assert.equal(missing, 0, 'every committed key is in Kafka');
  assert.equal(records.length, KEYS);
  assert.ok(replayed >= KEYS, 'of each pair, at most one answer commits: the other replays it');
});
