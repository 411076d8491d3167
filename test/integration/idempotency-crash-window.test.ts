// What a client sees when the gateway running its keyed request dies with the transaction open:
// the key stays held (its claim is on the log, its transaction undecided) until Kafka's
// coordinator aborts that transaction at transaction.timeout.ms, or the same instance id comes
// back. Retrying at another instance must then write the request exactly once, and the wait is
// bounded by the gateway's transaction timeout (10 s by default).
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { consumeAll, createTopics, testBootstrap, uniqueName } from '../support/kafka.js';
import { freePort, GatewayProcess } from '../support/gateway-process.js';

const KEYS = 400;
const IN_FLIGHT = 64;
const RETRY_PAUSE_MS = 100;
const GIVE_UP_MS = 180_000;

const bootstrap = testBootstrap();
const gateways: GatewayProcess[] = [];

after(async () => {
  await Promise.all(gateways.map((gw) => gw.kill('SIGKILL')));
});

async function post(url: string, key: string, body: string): Promise<{ status: number; replayed: boolean } | 'conn'> {
  try {
    const res = await fetch(`${url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    await res.arrayBuffer();
    return { status: res.status, replayed: res.headers.get('idempotent-replayed') === 'true' };
  } catch {
    return 'conn';
  }
}

it('a key held by a crashed gateway is answered by another within the transaction timeout, exactly once', { timeout: 600_000 }, async () => {
  const topic = uniqueName('crash-window');
  const idempotencyTopic = uniqueName('crash-window-idem');
  await createTopics(bootstrap, [{ topic, partitions: 3 }]);
  const start = async (name: string): Promise<GatewayProcess> => {
    const gw = new GatewayProcess({
      label: `gateway ${name}`,
      brokers: bootstrap,
      port: await freePort(),
      instanceId: uniqueName(`crash-${name}`),
      // TXGATE_CRASH_TXN_TIMEOUT_MS: measure another transaction.timeout.ms (e.g. Kafka's 60000).
      args: [
        '--idempotency-topic',
        idempotencyTopic,
        ...(process.env.TXGATE_CRASH_TXN_TIMEOUT_MS ? ['--kafka-prop', `transaction.timeout.ms=${process.env.TXGATE_CRASH_TXN_TIMEOUT_MS}`] : []),
      ],
    });
    gateways.push(gw);
    await gw.ready();
    return gw;
  };
  const a = await start('a');
  const b = await start('b');
  const run = uniqueName('k');
  const body = (i: number) => JSON.stringify({ records: [{ topic, key: `${run}-${i}`, value: { i } }] });

  // Load on A; kill -9 it once some keys have committed, so that others are mid-transaction.
  const unanswered: number[] = [];
  let committed = 0;
  let next = 0;
  let killed: Promise<unknown> | undefined;
  const load = async (): Promise<void> => {
    for (let i = next++; i < KEYS; i = next++) {
      const r = await post(a.url, `${run}-${i}`, body(i));
      if (r !== 'conn' && r.status === 200) {
        if (++committed === KEYS / 4) killed = a.kill('SIGKILL');
      } else unanswered.push(i);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, load));
  await killed;
  assert.ok(unanswered.length > 0, 'some requests were cut off by the crash');

  // Every cut-off request retried at B until it gets its answer.
  const waits: number[] = [];
  const statuses = new Map<string, number>();
  const killedAt = Date.now();
  await Promise.all(
    unanswered.map(async (i) => {
      const deadline = Date.now() + GIVE_UP_MS;
      for (;;) {
        const r = await post(b.url, `${run}-${i}`, body(i));
        const s = r === 'conn' ? 'conn' : String(r.status);
        statuses.set(s, (statuses.get(s) ?? 0) + 1);
        if (r !== 'conn' && r.status === 200) break;
        assert.ok(r === 'conn' || [409, 500, 503, 504].includes(r.status), `key ${i}: definitive ${s}`);
        assert.ok(Date.now() < deadline, `key ${i}: no answer from B within ${GIVE_UP_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
      waits.push(Date.now() - killedAt);
    }),
  );
  waits.sort((x, y) => x - y);
  console.log(
    `crash window: ${unanswered.length} requests cut off by kill -9; answered by the other instance after ` +
      `p50 ${waits[Math.floor(waits.length / 2)]} ms, max ${waits.at(-1)} ms; answers seen while retrying: ` +
      [...statuses].map(([s, n]) => `${s} x${n}`).join(', '),
  );

  // expected: the crashed transactions hold the last stable offset until the coordinator aborts them.
  const records = await consumeAll(bootstrap, topic, { timeoutMs: 120_000, expected: KEYS });
  console.log(`crash window: all ${KEYS} keys readable (read_committed) ${Date.now() - killedAt} ms after the kill`);
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.key!.toString(), (counts.get(r.key!.toString()) ?? 0) + 1);
  assert.deepEqual([...counts].filter(([, n]) => n !== 1), [], 'no key written twice');
  assert.equal(counts.size, KEYS, 'every key written');
});
