/**
 * Consume-transform-produce through the pool: output records and input offsets commit together
 * (KIP-447). A failing batch is aborted and read again, and the output holds every input exactly once.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { it } from 'node:test';
import { TransactionalProducerPool, consumeTransformProduce, createConfluentProducerFactory } from '../../src/index.js';
import type { ExactlyOnceConsumer } from '../../src/kafka/exactly-once.js';
import { consumeAll, createTopics, testBootstrap, uniqueName, waitFor } from '../support/kafka.js';

const require = createRequire(import.meta.url);
const Kafka = require('@confluentinc/kafka-javascript');
const bootstrap = testBootstrap();

it('commits output and offsets atomically; a failed batch is retried without duplicates', { timeout: 120_000 }, async () => {
  const input = uniqueName('eos-in');
  const output = uniqueName('eos-out');
  const tiny = uniqueName('eos-tiny');
  const group = uniqueName('eos-group');
  await createTopics(bootstrap, [
    { topic: input, partitions: 2 },
    { topic: output, partitions: 2 },
    { topic: tiny, partitions: 1, config: { 'max.message.bytes': '1024' } },
  ]);
  const pool = new TransactionalProducerPool({
    producerFactory: createConfluentProducerFactory({ 'bootstrap.servers': bootstrap }),
    size: 1,
    transactionalIdPrefix: uniqueName('eos'),
    instanceId: 'worker',
  });
  await pool.start();
  const total = 200;
  await pool.run((tx) =>
    tx.send(Array.from({ length: total }, (_, i) => ({ topic: input, key: Buffer.from(`k${i}`), value: Buffer.from(`m${i}`) }))),
  );

  const consumer = new Kafka.KafkaConsumer(
    {
      'bootstrap.servers': bootstrap,
      'group.id': group,
      'enable.auto.commit': false,
      'isolation.level': 'read_committed',
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({}, (err: unknown) => (err ? reject(err) : resolve())));
  consumer.setDefaultConsumeTimeout(200);
  consumer.subscribe([input]);

  const stop = new AbortController();
  let batches = 0;
  let failures = 0;
  let produced = 0;
  const loop = consumeTransformProduce({
    pool,
    consumer: consumer as ExactlyOnceConsumer,
    signal: stop.signal,
    batchSize: 30,
    onError: () => failures++,
    transform: (messages) => {
      batches++;
      const out = messages.map((m) => ({ topic: output, key: m.key ?? null, value: Buffer.from(m.value!.toString().toUpperCase()) }));
      // The third batch's output reaches the log, but the broker refuses one record (too large
      // for its topic): the whole transaction, offsets included, must leave no trace, and the
      // batch is read again.
      if (batches === 3) return [...out, { topic: tiny, value: Buffer.alloc(4096) }];
      produced += messages.length;
      return out;
    },
  });

  await waitFor(() => produced >= total, { timeoutMs: 90_000, what: 'every input message transformed' }).finally(() => stop.abort());
  await loop;

  const out = await consumeAll(bootstrap, [output], { isolation: 'read_committed', expected: total });
  const values = out.map((r) => r.value!.toString()).sort();
  assert.equal(failures, 1);
  assert.deepEqual(values, Array.from({ length: total }, (_, i) => `M${i}`).sort());

  // The group's committed offsets cover the whole input.
  const committed = await new Promise<Array<{ offset: number }>>((resolve, reject) =>
    consumer.committed(
      [0, 1].map((partition) => ({ topic: input, partition })),
      10_000,
      (err: unknown, tps: Array<{ offset: number }>) => (err ? reject(err) : resolve(tps)),
    ),
  );
  assert.equal(
    committed.reduce((sum, tp) => sum + tp.offset, 0),
    total,
  );
  await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  await pool.close();
});
