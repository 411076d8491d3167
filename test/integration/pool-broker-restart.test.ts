/**
 * Kill -9 the (only) broker in the middle of load, start it again on its data: the pool recovers
 * in the same process, and every transaction it reported committed is in Kafka, exactly once.
 * Runs its own broker, since it kills it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { TransactionalProducerPool, TxGateError, createConfluentProducerFactory } from '../../src/index.js';
import { LocalKafka } from '../../src/local-kafka/index.js';
import { consumeAll, createTopics, uniqueName, waitFor } from '../support/kafka.js';
import { KILLABLE_BROKER_PORT, KILLABLE_CONTROLLER_PORT, withPortLock } from '../support/ports.js';

const stateDir = mkdtempSync(path.join(tmpdir(), 'txgate-restart-'));
const kafka = new LocalKafka({ port: KILLABLE_BROKER_PORT, controllerPort: KILLABLE_CONTROLLER_PORT, stateDir });
let bootstrap = '';

it('recovers from a broker crash without a process restart; every reported commit is in Kafka', { timeout: 300_000 }, () =>
  withPortLock('killable-broker', async () => {
    bootstrap = await kafka.start();
    try {
      await crashAndRecover();
    } finally {
      await kafka.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  }),
);

async function crashAndRecover(): Promise<void> {
  const topic = uniqueName('crash');
  await createTopics(bootstrap, [{ topic, partitions: 2 }]);
  const pool = new TransactionalProducerPool({
    producerFactory: createConfluentProducerFactory({ 'bootstrap.servers': bootstrap, 'transaction.timeout.ms': 30_000 }),
    size: 4,
    transactionalIdPrefix: uniqueName('txg'),
    instanceId: 'crash',
    acquireTimeoutMs: 60_000,
    commitTimeoutMs: 5_000,
    retry: { deadlineMs: 60_000 },
    replaceBackoffMs: 200,
  });
  await pool.start();

  const committed: string[] = [];
  const failed = new Map<string, string>();
  let phase: 'before' | 'down' | 'after' = 'before';
  let committedAfterRestart = 0;
  let stop = false;

  const worker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const id = `w${w}-${i}`;
      try {
        await pool.run((tx) => tx.send([{ topic, key: Buffer.from(id), value: Buffer.from(`${id}-1`) }, { topic, value: Buffer.from(`${id}-2`) }]));
        committed.push(id);
        if (phase === 'after') committedAfterRestart++;
      } catch (error) {
        failed.set(id, error instanceof TxGateError ? error.code : String(error));
      }
    }
  };
  const workers = Array.from({ length: 6 }, (_, w) => worker(w));

  await waitFor(() => committed.length >= 50, { timeoutMs: 60_000, what: '50 commits' });
  phase = 'down';
  await kafka.kill();
  const committedWhileDown = committed.length;
  await new Promise((r) => setTimeout(r, 3_000)); // the outage itself, not a wait for a condition
  await kafka.restart();
  phase = 'after';
  await waitFor(() => committedAfterRestart >= 50, { timeoutMs: 180_000, what: '50 commits after the restart' });
  stop = true;
  await Promise.all(workers);
  await pool.close();

  assert.ok(committed.length > committedWhileDown, 'nothing committed after the restart');
  const records = await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: committed.length * 2, timeoutMs: 120_000 });
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.value!.toString(), (counts.get(r.value!.toString()) ?? 0) + 1);
  for (const id of committed) {
    assert.equal(counts.get(`${id}-1`), 1, `${id}-1 committed but seen ${counts.get(`${id}-1`) ?? 0} times`);
    assert.equal(counts.get(`${id}-2`), 1, `${id}-2 committed but seen ${counts.get(`${id}-2`) ?? 0} times`);
  }
  // Failed ones: aborted means invisible; only 'unknown' may have gone either way, never halfway.
  for (const [id, code] of failed) {
    const one = counts.get(`${id}-1`) ?? 0;
    const two = counts.get(`${id}-2`) ?? 0;
    assert.equal(one, two, `${id} is half visible`);
    if (code === 'TXGATE_TRANSACTION_ABORTED') assert.equal(one, 0, `${id} was reported aborted but is visible`);
  }
  console.log(
    `# broker crash: ${committed.length} committed (${committedAfterRestart} after restart), ${failed.size} failed: ` +
      JSON.stringify(Object.fromEntries([...new Set(failed.values())].map((c) => [c, [...failed.values()].filter((v) => v === c).length]))) +
      `, pool counters ${JSON.stringify(pool.stats().counters)}`,
  );
}

