// Replaying a key whose outcome the gateway holds only as an index entry (loaded at start, not
// among the recent outcomes held in full): its outcome record is read back from Kafka by offset.
// A replay, a body mismatch (422) and a record deleted from the topic (503, never a second write).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RdKafka } from '@confluentinc/kafka-javascript';
import type { TransactionalProducerPool } from '../../src/pool/pool.js';
import { encodeOutcome } from '../../src/gateway/idempotency/record-format.js';
import type { IdempotencyStore } from '../../src/gateway/idempotency/store.js';
import { IdempotencyKeyMismatchError, IdempotencyUnavailableError } from '../../src/errors.js';
import { TransactionService, type SubmitResult } from '../../src/gateway/service/transaction-service.js';
import { consumeAll, createTopics, startKafkaPool, testBootstrap, uniqueName } from '../support/kafka.js';

const bootstrap = testBootstrap();
const kafka = { 'bootstrap.servers': bootstrap };
const dataTopic = uniqueName('read-data');
const idemTopic = uniqueName('read-idem');
/**
 * Records written after the keys, so that loading summarizes the keys' records instead of
 * holding their outcomes in full: the view decodes in full only about the last 2 x 50,000 / 3
 * records of each of the topic's 3 partitions.
 */
const FILLER = 150_000;

let pool: TransactionalProducerPool;
const services: TransactionService[] = [];

async function newService(): Promise<TransactionService> {
  const service = new TransactionService({ pool, kafka, idempotencyTopic: idemTopic });
  services.push(service);
  await service.start();
  return service;
}

const storeOf = (service: TransactionService): IdempotencyStore => (service as unknown as { store: IdempotencyStore }).store;

function keyed(service: TransactionService, key: string, body: string): Promise<SubmitResult> {
  return service.submit({
    records: [{ topic: dataTopic, key: Buffer.from(key), value: Buffer.from(body) }],
    idempotency: { key, fingerprint: `sha256-of-${body}` },
  });
}

async function writesOf(body: string): Promise<number> {
  return (await consumeAll(bootstrap, dataTopic)).filter((r) => r.value?.toString() === body).length;
}

/** Outcomes of other keys, written fast by a plain producer. */
async function fill(topic: string, n: number): Promise<void> {
  const producer = new RdKafka.Producer({ 'bootstrap.servers': bootstrap, 'linger.ms': 20 });
  await new Promise<void>((resolve, reject) => producer.connect({}, (err) => (err ? reject(err) : resolve())));
  producer.setPollInterval(50);
  const value = encodeOutcome({ fingerprint: 'f', records: [], committedAt: new Date().toISOString() });
  for (let i = 0; i < n; i++) {
    for (;;) {
      try {
        producer.produce(topic, null, value, `filler-${i}`);
        break;
      } catch (err) {
        if ((err as { code?: number }).code !== RdKafka.CODES.ERRORS.ERR__QUEUE_FULL) throw err;
        await new Promise((r) => setTimeout(r, 10)); // the client's queue is full: let it send
      }
    }
  }
  await new Promise<void>((resolve, reject) => producer.flush(60_000, (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
}

async function deleteBefore(topic: string, partition: number, offset: number): Promise<void> {
  const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': bootstrap });
  try {
    const [result] = await new Promise<RdKafka.DeleteRecordsResult[]>((resolve, reject) =>
      admin.deleteRecords([{ topic, partition, offset }], { timeout: 30_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    assert.equal(result?.error, undefined);
  } finally {
    admin.disconnect();
  }
}

before(async () => {
  await createTopics(bootstrap, [{ topic: dataTopic, partitions: 1 }]);
  pool = await startKafkaPool(bootstrap, { size: 2, idPrefix: 'read', instanceId: 'a' });
});

after(async () => {
  for (const s of services) await s.close({ timeoutMs: 10_000 });
  await pool?.close();
});

describe('replaying outcomes read back from Kafka', { timeout: 300_000 }, () => {
  it('replays, refuses another body, and answers 503 (never a second write) when the record is gone', async () => {
    const writer = await newService();
    const firsts = new Map<string, SubmitResult>();
    for (const key of ['k-replay', 'k-mismatch', 'k-gone']) firsts.set(key, await keyed(writer, key, `body-${key}`));
    await fill(idemTopic, FILLER);

    const restarted = await newService();
    const store = storeOf(restarted);
    assert.ok(restarted.stats().idempotencyKeys >= FILLER + 3);
    assert.equal(store.outcomesRead, 0);

    const replay = await keyed(restarted, 'k-replay', 'body-k-replay');
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.records, firsts.get('k-replay')!.records);
    assert.equal(store.outcomesRead, 1, 'read back from Kafka');
    assert.deepEqual((await keyed(restarted, 'k-replay', 'body-k-replay')).records, replay.records);
    assert.equal(store.outcomesRead, 1, 'the next retry replays from memory');

    await assert.rejects(keyed(restarted, 'k-mismatch', 'another body'), IdempotencyKeyMismatchError);
    assert.equal(store.outcomesRead, 2);

    // The broker deletes k-gone's outcome (as retention would, were the clocks far apart).
    const record = (await consumeAll(bootstrap, idemTopic, { isolation: 'read_uncommitted' })).filter(
      (r) => r.key?.toString() === 'k-gone' && !JSON.parse(r.value!.toString()).pending,
    )[0]!;
    await deleteBefore(idemTopic, record.partition, Number(record.offset) + 1);
    await assert.rejects(keyed(restarted, 'k-gone', 'body-k-gone'), IdempotencyUnavailableError);
    assert.equal(await writesOf('body-k-gone'), 1, 'not run again');
    assert.equal(await writesOf('body-k-replay'), 1);
  });
});
