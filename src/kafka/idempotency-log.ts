/**
 * The idempotency store's log readers on the native client: one KafkaConsumer per reader, by
 * manual assignment, read in a pull loop (consume(n, cb)). Not the client's flowing mode: its
 * disconnect drops messages still queued for JavaScript without freeing them, and librdkafka's
 * destroy then waits for them forever. With pulls nothing is in flight once the last one returned.
 */
import type {
  Assignment,
  IdempotencyLog,
  IdempotencyPorts,
  LogEvent,
  LogReader,
  ReaderOptions,
  TopicLayout,
} from '../gateway/idempotency/ports.js';
import { LogReaderStoppedError } from '../gateway/idempotency/ports.js';
import { KafkaAdmin } from './admin.js';
import { Kafka } from './native.js';
import type { KafkaProps } from './props.js';

const OFFSET_BEGINNING = -2;

/** The Kafka adapters of every idempotency port. */
export function createKafkaIdempotencyPorts(props: KafkaProps): IdempotencyPorts {
  return { log: new KafkaIdempotencyLog(props), admin: new KafkaAdmin(props, 'txgate-idempotency-admin') };
}

export class KafkaIdempotencyLog implements IdempotencyLog {
  constructor(private readonly props: KafkaProps) {}

  async openReader(opts: ReaderOptions): Promise<LogReader> {
    const consumer = new Kafka.KafkaConsumer(
      {
        ...this.props,
        ...tuning(opts),
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'enable.partition.eof': true,
        'isolation.level': opts.isolation,
      } as Kafka.ConsumerGlobalConfig,
      // An offset below the log start (retention deleted it): go to the earliest record left.
      { 'auto.offset.reset': 'earliest' },
    );
    consumer.on('event.error', (err) => opts.onError?.(err));
    const metadata = await new Promise<Kafka.Metadata>((resolve, reject) =>
      consumer.connect({ timeout: opts.timeoutMs }, (err, md) => (err ? reject(err) : resolve(md))),
    );
    return new KafkaLogReader(consumer, opts.topic, metadata.brokers.length);
  }
}

/**
 * Client settings per use. Group ids are random and never committed to: a reader has no group
 * offsets, and two instances never share one.
 */
function tuning(opts: ReaderOptions): Record<string, string | number> {
  const group = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  if (opts.use === 'lookup') {
    return {
      'group.id': `txgate-idempotency-reader-${group}`,
      'client.id': 'txgate-idempotency-reader',
      // One record is wanted: fetch little, and do not prefetch more once it is queued. Without
      // a zero backoff, a partition whose queue held its threshold (that one record) is not
      // fetched again for fetch.queue.backoff.ms (1 s): every read took a second.
      'queued.min.messages': 1,
      'fetch.queue.backoff.ms': 0,
      'max.partition.fetch.bytes': 65_536,
      'fetch.wait.max.ms': 10,
    };
  }
  return {
    'group.id': `txgate-idempotency-${group}`,
    'client.id': `txgate-idempotency-${opts.isolation === 'read_committed' ? 'committed' : 'pending'}`,
    // An idle partition's end (which is how a reader passes a trailing commit marker) is noticed
    // one empty fetch later; keep that short.
    'fetch.wait.max.ms': 100,
    // Loading at start reads the whole topic, faster than JavaScript takes the records: once
    // the client's queue is full, it fetches again only after fetch.queue.backoff.ms (1 s by
    // default), and meanwhile the queue runs dry; that halved the loading speed. Bigger
    // fetches help a little more.
    'fetch.queue.backoff.ms': 10,
    'max.partition.fetch.bytes': 8 * 1024 * 1024,
  };
}

class KafkaLogReader implements LogReader {
  /** What the current consume call emitted, in order: the client emits records and ends synchronously before its callback. */
  private events: LogEvent[] = [];

  constructor(
    private readonly consumer: Kafka.KafkaConsumer,
    private readonly topic: string,
    readonly brokers: number,
  ) {
    consumer.on('data', (m) => {
      if (m.topic === topic) this.events.push({ kind: 'record', partition: m.partition, offset: m.offset, key: keyOf(m.key), value: m.value });
    });
    consumer.on('partition.eof', (e) => {
      if (e.topic === topic) this.events.push({ kind: 'end', partition: e.partition, offset: e.offset });
    });
    // A poll waits only for its first message, not for the batch to fill.
    // (In the client since 1.x, missing from its type declarations.)
    (consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
  }

  async describe(timeoutMs: number): Promise<TopicLayout | undefined> {
    const md = await new Promise<Kafka.Metadata>((resolve, reject) =>
      this.consumer.getMetadata({ topic: this.topic, timeout: timeoutMs }, (err, data) => (err ? reject(err) : resolve(data))),
    );
    const t = md.topics.find((x) => x.name === this.topic);
    if (!t || t.partitions.length === 0) return undefined;
    return { partitions: t.partitions.length, withoutLeader: t.partitions.filter((p) => p.leader < 0).length };
  }

  assign(assignments: Assignment[]): void {
    this.consumer.assign(
      assignments.map((a) => ({ topic: this.topic, partition: a.partition, offset: a.offset === 'beginning' ? OFFSET_BEGINNING : a.offset })),
    );
  }

  unassign(): void {
    this.consumer.unassign();
  }

  poll(maxRecords: number, waitMs: number): Promise<LogEvent[]> {
    this.consumer.setDefaultConsumeTimeout(waitMs);
    return new Promise<LogEvent[]>((resolve, reject) => {
      try {
        this.consumer.consume(maxRecords, (err) => {
          const events = this.events;
          this.events = [];
          if (err) reject(err);
          else resolve(events);
        });
      } catch (err) {
        reject(new LogReaderStoppedError(`the idempotency consumer stopped: ${String(err)}`, { cause: err }));
      }
    });
  }

  close(): Promise<void> {
    if (!this.consumer.isConnected()) return Promise.resolve();
    return new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
  }
}

function keyOf(k: unknown): string | undefined {
  if (k === null || k === undefined) return undefined;
  return Buffer.isBuffer(k) ? k.toString('utf8') : String(k);
}
