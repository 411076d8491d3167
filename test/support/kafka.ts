/**
 * Helpers for integration tests against the real broker scripts/test.sh starts for the run.
 * Tests share that broker, so every test works on its own topics (uniqueName).
 */
import { randomBytes } from 'node:crypto';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { createConfluentProducerFactory } from '../../src/kafka/confluent-producer.js';
import { readTopics, type Isolation, type TopicRecord } from '../../src/kafka/read-topic.js';
import { ensureTopics, type TopicSpec } from '../../src/local-kafka/topics.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import type { ProducerFactory } from '../../src/pool/producer-port.js';
import { listTransactions } from '../../src/verify/transactions.js';

/** The shared test broker's bootstrap address (host:port), from TXGATE_TEST_BOOTSTRAP. */
export function testBootstrap(): string {
  const b = process.env.TXGATE_TEST_BOOTSTRAP?.trim();
  if (!b) {
    throw new Error(
      'TXGATE_TEST_BOOTSTRAP is not set: integration tests need the broker scripts/test.sh starts. ' +
        'Run them with `npm test` (or `bash scripts/test.sh test/integration/<file>.test.ts`), ' +
        'or point TXGATE_TEST_BOOTSTRAP at a running broker (e.g. 127.0.0.1:19092).',
    );
  }
  return b;
}

let counter = 0;
/** A name no other test (in this or a parallel process, or an earlier run) uses: topics, ids, groups. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${randomBytes(4).toString('hex')}`;
}

/** Creates new topics (failing if one exists) and waits until every partition has a leader. */
export async function createTopics(
  bootstrap: string,
  topics: Array<{ topic: string; partitions?: number; replicationFactor?: number; config?: Record<string, string> }>,
): Promise<void> {
  await ensureTopics(bootstrap, topics as TopicSpec[], { failIfExists: true });
}

/**
 * Every transactional id the cluster's coordinators know (Kafka's TransactionsCommand `list`,
 * about 2-3 s: it starts a JVM). Ids stay known until transactional.id.expiration.ms passes.
 */
export async function listTransactionalIds(bootstrap: string): Promise<string[]> {
  return (await listTransactions(bootstrap)).map((t) => t.transactionalId);
}

/** A started pool of `size` transactional producers on `bootstrap`, its ids under a prefix no other test uses. */
export async function startKafkaPool(bootstrap: string, opts: { size: number; idPrefix: string; instanceId: string }): Promise<TransactionalProducerPool> {
  const pool = new TransactionalProducerPool({
    producerFactory: createConfluentProducerFactory({ 'bootstrap.servers': bootstrap }),
    size: opts.size,
    transactionalIdPrefix: uniqueName(opts.idPrefix),
    instanceId: opts.instanceId,
  });
  await pool.start();
  return pool;
}

// Polling lives in wait.ts (unit tests on fakes use it without the Kafka client); integration tests take it from here.
export { waitFor, type WaitOptions } from './wait.js';

/** One record as read back (src/kafka/read-topic.ts: tests and `txgate verify` share the reader). */
export type ConsumedRecord = TopicRecord;
export type { Isolation };

export interface ConsumeAllOptions {
  /** Default read_committed. */
  isolation?: Isolation;
  /**
   * Keep reading until at least this many records arrived (for records still being written);
   * without it, reading stops at the end offsets as they were when the call began.
   */
  expected?: number;
  /** Default 30 s. Rejects when the end is not reached in time. */
  timeoutMs?: number;
}

/**
 * Reads every record of the topics from the beginning until each partition's end offset
 * (read_committed: the last stable offset; read_uncommitted: the high watermark). Records come
 * back ordered by topic, partition and offset. No consumer group offsets are committed.
 */
export function consumeAll(bootstrap: string, topics: string | string[], opts: ConsumeAllOptions = {}): Promise<ConsumedRecord[]> {
  return readTopics(bootstrap, topics, { ...opts, groupId: uniqueName('txgate-test-consume-all') });
}

/** Appends records with a plain (non-transactional) producer and waits for their delivery. */
export async function produceRecords(
  bootstrap: string,
  records: Array<{ topic: string; partition?: number; key?: string | Buffer | null; value: string | Buffer | null }>,
): Promise<void> {
  const producer = new RdKafka.Producer({ 'bootstrap.servers': bootstrap, dr_cb: true, 'enable.idempotence': true, 'linger.ms': 0 });
  await new Promise<void>((resolve, reject) => {
    producer.connect({}, (err) => (err ? reject(err) : resolve()));
  });
  try {
    producer.setPollInterval(10);
    const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
    producer.on('delivery-report', (err, report) => {
      const p = pending.get(report.opaque as number);
      pending.delete(report.opaque as number);
      if (err) p?.reject(new Error(`delivery failed: ${err.message}`));
      else p?.resolve();
    });
    await Promise.all(
      records.map(
        (r, i) =>
          new Promise<void>((resolve, reject) => {
            pending.set(i, { resolve, reject });
            const value = r.value === null ? null : Buffer.from(r.value);
            const key = r.key === undefined || r.key === null ? null : Buffer.from(r.key);
            producer.produce(r.topic, r.partition ?? null, value, key, null, i);
          }),
      ),
    );
  } finally {
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
}

/**
 * Real producers whose commit waits while the test holds the gate: a "slow" transaction on the
 * real broker, so requests pile up behind it. `waiting()` counts commits held at the gate.
 */
export function gatedCommitFactory(bootstrap: string = testBootstrap()) {
  const real = createConfluentProducerFactory({ 'bootstrap.servers': bootstrap });
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => {};
  let waiting = 0;
  const factory: ProducerFactory = (id) => {
    const p = real(id);
    return {
      transactionalId: p.transactionalId,
      init: (t) => p.init(t),
      begin: () => p.begin(),
      send: (r) => p.send(r),
      sendOffsets: (o, c, t) => p.sendOffsets(o, c, t),
      commit: async (t) => {
        waiting++;
        await gate;
        waiting--;
        return p.commit(t);
      },
      abort: (t) => p.abort(t),
      close: (t) => p.close(t),
    };
  };
  return {
    factory,
    hold: () => void (gate = new Promise((resolve) => (open = resolve))),
    release: () => open(),
    waiting: () => waiting,
  };
}
