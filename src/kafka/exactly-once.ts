/**
 * Exactly-once consume-transform-produce with the pool (KIP-447). Each batch a consumer reads is
 * transformed, and the output records and the consumer's offsets are committed in ONE
 * transaction, with the consumer's group metadata, so the broker fences by consumer-group
 * generation: a zombie that lost its partitions cannot commit, and one producer per worker is
 * enough (no producer per input partition).
 *
 * If a transaction fails, the consumer is rewound to the group's committed offsets, read back
 * from the coordinator (with read_committed, librdkafka asks for stable offsets, KIP-447): after
 * an abort they are where the batch began, and after a commit whose outcome was unknown they say
 * whether it went through, so the batch is neither lost nor processed twice.
 */
import type { TransactionalProducerPool } from '../pool/pool.js';
import type { OutgoingRecord, TopicPartitionOffset } from '../pool/producer-port.js';

export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  key?: Buffer | null;
  value: Buffer | null;
  headers?: Array<Record<string, Buffer | string>>;
  timestamp?: number;
}

/**
 * The consumer the loop reads from: @confluentinc/kafka-javascript's KafkaConsumer, connected and
 * subscribed, with enable.auto.commit=false and isolation.level=read_committed.
 */
export interface ExactlyOnceConsumer {
  consume(count: number, cb: (err: unknown, messages: ConsumedMessage[]) => void): unknown;
  seek(toppar: { topic: string; partition: number; offset: number }, timeoutMs: number, cb: (err?: unknown) => void): unknown;
  committed(
    toppars: Array<{ topic: string; partition: number }>,
    timeoutMs: number,
    cb: (err: unknown, offsets: Array<{ topic: string; partition: number; offset: number }>) => void,
  ): unknown;
}

export interface ConsumeTransformProduceOptions {
  pool: TransactionalProducerPool;
  consumer: ExactlyOnceConsumer;
  transform(messages: ConsumedMessage[]): OutgoingRecord[] | Promise<OutgoingRecord[]>;
  /** Messages read per transaction. */
  batchSize?: number;
  /** Stops the loop after the current batch. */
  signal: AbortSignal;
  /** Told about each failed batch before it is retried. */
  onError?(error: unknown): void;
}

/** The offsets to commit for a batch: per partition, the highest offset read plus one. */
export function offsetsToCommit(messages: ConsumedMessage[]): TopicPartitionOffset[] {
  const next = new Map<string, TopicPartitionOffset>();
  for (const m of messages) {
    const key = `${m.topic}\u0000${m.partition}`;
    const current = next.get(key);
    if (!current || Number(current.offset) < m.offset + 1) next.set(key, { topic: m.topic, partition: m.partition, offset: m.offset + 1 });
  }
  return [...next.values()];
}

function firstOffsets(messages: ConsumedMessage[]): TopicPartitionOffset[] {
  const first = new Map<string, TopicPartitionOffset>();
  for (const m of messages) {
    const key = `${m.topic}\u0000${m.partition}`;
    const current = first.get(key);
    if (!current || m.offset < Number(current.offset)) first.set(key, { topic: m.topic, partition: m.partition, offset: m.offset });
  }
  return [...first.values()];
}

/** Runs until `signal` aborts; resolves with how much it committed. */
export async function consumeTransformProduce(
  options: ConsumeTransformProduceOptions,
): Promise<{ transactions: number; messages: number }> {
  const { pool, consumer, transform, signal } = options;
  const batchSize = options.batchSize ?? 100;
  let transactions = 0;
  let messages = 0;
  while (!signal.aborted) {
    const batch = await new Promise<ConsumedMessage[]>((resolve, reject) =>
      consumer.consume(batchSize, (err, read) => (err ? reject(err) : resolve(read ?? []))),
    );
    if (batch.length === 0) continue;
    try {
      await pool.run(async (tx) => {
        await tx.send(await transform(batch));
        await tx.sendOffsets(offsetsToCommit(batch), consumer);
      });
      transactions++;
      messages += batch.length;
    } catch (error) {
      options.onError?.(error);
      await rewind(consumer, batch);
    }
  }
  return { transactions, messages };
}

/** Seeks every partition of the batch to the group's committed offset (or the batch's start). */
async function rewind(consumer: ExactlyOnceConsumer, batch: ConsumedMessage[]): Promise<void> {
  const starts = firstOffsets(batch);
  const committed = await new Promise<Array<{ topic: string; partition: number; offset: number }>>((resolve, reject) =>
    consumer.committed(
      starts.map(({ topic, partition }) => ({ topic, partition })),
      10_000,
      (err, offsets) => (err ? reject(err) : resolve(offsets)),
    ),
  );
  for (const start of starts) {
    const known = committed.find((c) => c.topic === start.topic && c.partition === start.partition);
    const offset = known && known.offset >= 0 ? known.offset : Number(start.offset);
    await new Promise<void>((resolve, reject) =>
      consumer.seek({ topic: start.topic, partition: start.partition, offset }, 10_000, (err) => (err ? reject(err) : resolve())),
    );
  }
}
