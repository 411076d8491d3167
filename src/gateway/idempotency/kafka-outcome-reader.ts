/**
 * The OutcomeReader on Kafka: one consumer of its own, created on first use, assigned at the
 * wanted offset for each read and unassigned after it. Reads run one at a time (a consumer has
 * one assignment); concurrent reads of the same record share one.
 *
 * read_uncommitted on purpose: the key index holds only offsets of committed outcomes (read by
 * the read_committed consumer, or our own after their commit), so the record at such an offset
 * is the committed one either way, and read_committed would wait behind any transaction still
 * open below it (up to transaction.timeout.ms) for nothing.
 */
import kafka from '@confluentinc/kafka-javascript';
import type { KafkaConsumer as RdKafkaConsumer, LibrdKafkaError, Message } from '@confluentinc/kafka-javascript';
import { AcquireAbortedError } from '../../errors.js';
import { IdempotencyUnavailableError } from '../../errors.js';
import type { OutcomeReader, StoredRecord } from './outcome-reader.js';
import type { KafkaProps, Logger } from './store.js';

const { KafkaConsumer } = kafka;

/** How long one consume call waits for a message: the read's deadline is checked between calls. */
const CONSUME_WAIT_MS = 100;

export interface KafkaOutcomeReaderOptions {
  kafka: KafkaProps;
  topic: string;
  logger?: Logger | undefined;
}

export class KafkaOutcomeReader implements OutcomeReader {
  private consumer: RdKafkaConsumer | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly sharing = new Map<string, Promise<StoredRecord | undefined>>();
  private readonly eof = new Map<number, number>();
  private closed = false;

  constructor(private readonly opts: KafkaOutcomeReaderOptions) {}

  read(partition: number, offset: number, opts: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<StoredRecord | undefined> {
    if (opts.signal?.aborted) return Promise.reject(new AcquireAbortedError(opts.signal.reason));
    if (this.closed) return Promise.reject(new IdempotencyUnavailableError('the idempotency store is closed'));
    const id = `${partition}:${offset}`;
    let shared = this.sharing.get(id);
    if (!shared) {
      const deadline = Date.now() + opts.timeoutMs;
      shared = this.serially(() => this.readNow(partition, offset, deadline)).finally(() => this.sharing.delete(id));
      this.sharing.set(id, shared);
    }
    return abortable(shared, opts.signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain.catch(() => undefined);
    const consumer = this.consumer;
    this.consumer = undefined;
    if (consumer?.isConnected()) await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.catch(() => undefined).then(work);
    this.chain = run;
    return run;
  }

  private async readNow(partition: number, offset: number, deadline: number): Promise<StoredRecord | undefined> {
    if (this.closed) throw new IdempotencyUnavailableError('the idempotency store is closed');
    const consumer = await this.connected(deadline);
    const topic = this.opts.topic;
    this.eof.delete(partition);
    consumer.assign([{ topic, partition, offset }]);
    try {
      let lastError: unknown;
      while (Date.now() < deadline && !this.closed) {
        let messages: Message[];
        try {
          messages = await new Promise<Message[]>((resolve, reject) => consumer.consume(1, (err, msgs) => (err ? reject(err) : resolve(msgs))));
        } catch (err) {
          lastError = err;
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const m = messages.find((x) => x.topic === topic && x.partition === partition);
        // The first record at or after `offset`: a later one means the wanted one is gone (or
        // `offset` fell below the log start and the consumer restarted from the earliest).
        if (m) return m.offset === offset ? { offset, key: keyOf(m), value: m.value ?? null } : undefined;
        // The partition's end reached with nothing at `offset`.
        const end = this.eof.get(partition);
        if (end !== undefined && end <= offset) return undefined;
      }
      throw new IdempotencyUnavailableError(
        `could not read the outcome at partition ${partition}, offset ${offset} of ${topic} in time` + (lastError ? `: ${String(lastError)}` : ''),
      );
    } finally {
      consumer.unassign();
    }
  }

  private async connected(deadline: number): Promise<RdKafkaConsumer> {
    if (this.consumer?.isConnected()) return this.consumer;
    const consumer = new KafkaConsumer(
      {
        ...this.opts.kafka,
        'group.id': `txgate-idempotency-reader-${process.pid}-${Math.random().toString(36).slice(2)}`,
        'client.id': 'txgate-idempotency-reader',
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'enable.partition.eof': true,
        'isolation.level': 'read_uncommitted',
        // One record is wanted: fetch little, and do not prefetch more once it is queued. Without
        // a zero backoff, a partition whose queue held its threshold (that one record) is not
        // fetched again for fetch.queue.backoff.ms (1 s): every read took a second.
        'queued.min.messages': 1,
        'fetch.queue.backoff.ms': 0,
        'max.partition.fetch.bytes': 65_536,
        'fetch.wait.max.ms': 10,
      } as never,
      // An offset below the log start (retention deleted it): go to the earliest, whose offset
      // then tells that the wanted record is gone.
      { 'auto.offset.reset': 'earliest' },
    );
    consumer.on('event.error', (err: LibrdKafkaError) => this.opts.logger?.warn({ err: String(err) }, 'idempotency outcome reader error'));
    consumer.on('partition.eof', (e: { topic: string; partition: number; offset: number }) => {
      if (e.topic === this.opts.topic) this.eof.set(e.partition, e.offset);
    });
    await new Promise<void>((resolve, reject) =>
      consumer.connect({ timeout: Math.max(1_000, deadline - Date.now()) }, (err) => (err ? reject(err) : resolve())),
    ).catch((err: unknown) => {
      throw new IdempotencyUnavailableError(`could not connect to Kafka to read an idempotency outcome: ${String(err)}`, { cause: err });
    });
    consumer.setDefaultConsumeTimeout(CONSUME_WAIT_MS);
    this.consumer = consumer;
    return consumer;
  }
}

function keyOf(m: Message): string | undefined {
  const k: unknown = m.key;
  if (k === null || k === undefined) return undefined;
  return Buffer.isBuffer(k) ? k.toString('utf8') : String(k);
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AcquireAbortedError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
