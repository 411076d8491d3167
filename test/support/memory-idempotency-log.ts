/**
 * The idempotency store's ports (src/gateway/idempotency/ports.ts) in memory, on the partition
 * model of memory-log.ts: topics of MemoryPartitionLogs, readers at either isolation level
 * (read_committed stops at the last stable offset and skips aborted records), an admin, and
 * transactions that write into the logs. For store tests without a broker.
 */
import type { RecordMetadata, OutgoingRecord } from '../../src/pool/producer-port.js';
import type { Transaction } from '../../src/pool/types.js';
import type {
  Assignment,
  IdempotencyLog,
  IdempotencyPorts,
  Isolation,
  LogEvent,
  LogReader,
  NewTopic,
  ReaderOptions,
  RetentionPolicy,
  TopicAdmin,
  TopicLayout,
} from '../../src/gateway/idempotency/ports.js';
import { MemoryConsumer, MemoryPartitionLog } from './memory-log.js';

interface MemoryTopic {
  partitions: MemoryPartitionLog[];
  config: Record<string, string>;
}

/** A cluster's topics, shared by every instance's ports. */
export class MemoryCluster {
  readonly topics = new Map<string, MemoryTopic>();
  brokers = 1;

  createTopic(topic: string, partitions: number, config: Record<string, string> = {}): void {
    if (this.topics.has(topic)) throw new Error(`topic ${topic} exists`);
    this.topics.set(topic, { partitions: Array.from({ length: partitions }, () => new MemoryPartitionLog()), config: { ...config } });
  }

  partition(topic: string, partition: number): MemoryPartitionLog {
    const log = this.topics.get(topic)?.partitions[partition];
    if (!log) throw new Error(`no partition ${topic}/${partition}`);
    return log;
  }

  /** A transaction of a transactional producer on this cluster. */
  transaction(): MemoryTransaction {
    return new MemoryTransaction(this);
  }

  /** Ports of one instance (each instance has its own readers and admin). */
  ports(): IdempotencyPorts & { log: MemoryIdempotencyLog; admin: MemoryTopicAdmin } {
    return { log: new MemoryIdempotencyLog(this), admin: new MemoryTopicAdmin(this) };
  }
}

/** A Kafka transaction over the cluster's logs: send() appends, commit() and abort() end it on every partition it wrote. */
export class MemoryTransaction implements Transaction {
  readonly transactionalId = 'memory-tx';
  readonly slot = 0;
  private readonly txns = new Map<MemoryPartitionLog, number>();

  constructor(private readonly cluster: MemoryCluster) {}

  send(records: OutgoingRecord | OutgoingRecord[]): Promise<RecordMetadata[]> {
    const sent = (Array.isArray(records) ? records : [records]).map((r) => {
      const partition = r.partition ?? 0;
      const log = this.cluster.partition(r.topic, partition);
      let txn = this.txns.get(log);
      if (txn === undefined) {
        txn = log.begin();
        this.txns.set(log, txn);
      }
      const offset = log.append(txn, r.key?.toString('utf8') ?? '', r.value ?? Buffer.alloc(0));
      return { topic: r.topic, partition, offset: String(offset) };
    });
    return Promise.resolve(sent);
  }

  sendOffsets(): Promise<void> {
    return Promise.reject(new Error('not supported in memory'));
  }

  commit(): void {
    for (const [log, txn] of this.txns) log.commit(txn);
  }

  abort(): void {
    for (const [log, txn] of this.txns) log.abort(txn);
  }
}

export class MemoryIdempotencyLog implements IdempotencyLog {
  readonly opened: MemoryLogReader[] = [];
  /** Opening fails this many more times. */
  failOpens = 0;

  constructor(private readonly cluster: MemoryCluster) {}

  openReader(opts: ReaderOptions): Promise<LogReader> {
    if (this.failOpens > 0) {
      this.failOpens--;
      return Promise.reject(new Error('broker transport failure (memory)'));
    }
    const reader = new MemoryLogReader(this.cluster, opts.topic, opts.isolation);
    this.opened.push(reader);
    return Promise.resolve(reader);
  }
}

export class MemoryLogReader implements LogReader {
  closed = false;
  private consumers: Array<{ partition: number; consumer: MemoryConsumer }> = [];
  private events: LogEvent[] = [];
  private stopWatching: Array<() => void> = [];

  constructor(
    private readonly cluster: MemoryCluster,
    private readonly topic: string,
    readonly isolation: Isolation,
  ) {}

  get brokers(): number {
    return this.cluster.brokers;
  }

  describe(): Promise<TopicLayout | undefined> {
    const t = this.cluster.topics.get(this.topic);
    return Promise.resolve(t ? { partitions: t.partitions.length, withoutLeader: 0 } : undefined);
  }

  assign(assignments: Assignment[]): void {
    this.consumers = assignments.map(({ partition, offset }) => {
      const log = this.cluster.partition(this.topic, partition);
      const sink = {
        record: (o: number, key: string | undefined, value: Buffer | undefined) =>
          this.events.push({ kind: 'record', partition, offset: o, key, value: value ?? null }),
        endOfPartition: (o: number) => this.events.push({ kind: 'end', partition, offset: o }),
      };
      // An offset past the end is out of range: auto.offset.reset=earliest reads from the start.
      const from = offset === 'beginning' || offset > log.highWatermark ? 0 : offset;
      return { partition, consumer: new MemoryConsumer(log, this.isolation, sink, from) };
    });
  }

  unassign(): void {
    this.consumers = [];
  }

  async poll(maxRecords: number, waitMs: number): Promise<LogEvent[]> {
    if (this.closed) throw new Error('poll on a closed reader');
    if (!this.fetch(maxRecords)) await this.changeOrTimeout(waitMs);
    this.fetch(maxRecords);
    const events = this.events;
    this.events = [];
    return events;
  }

  close(): Promise<void> {
    this.closed = true;
    this.consumers = [];
    return Promise.resolve();
  }

  /** Fetches what is readable now, up to `maxRecords` records; true if anything came. */
  private fetch(maxRecords: number): boolean {
    const before = this.events.length;
    let records = 0;
    for (const { consumer } of this.consumers) {
      while (records < maxRecords && consumer.canFetch()) {
        const n = this.events.length;
        consumer.fetch();
        if (this.events.length > n) records++;
      }
      if (consumer.canReportEnd()) consumer.reportEnd();
    }
    return this.events.length > before;
  }

  private changeOrTimeout(waitMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        for (const stop of this.stopWatching) stop();
        this.stopWatching = [];
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      const logs = new Set(this.consumers.map(({ partition }) => this.cluster.partition(this.topic, partition)));
      for (const log of logs) this.stopWatching.push(log.watch(done));
    });
  }
}

type AdminCall = 'topicExists' | 'createTopic' | 'endOffsets' | 'retentionPolicy';

export class MemoryTopicAdmin implements TopicAdmin {
  readonly bootstrapServers = 'memory:9092';
  readonly created: NewTopic[] = [];
  readonly calls: AdminCall[] = [];
  closed = false;
  /** What retentionPolicy() answers instead of looking at the topic's config. */
  retentionAnswer: RetentionPolicy | undefined;
  private readonly failures = new Map<AdminCall, Error[]>();

  constructor(private readonly cluster: MemoryCluster) {}

  /** The next `times` calls of `call` fail with `error`. */
  fail(call: AdminCall, times: number, error: Error = Object.assign(new Error('request timed out (memory)'), { code: 7 })): void {
    this.failures.set(call, [...(this.failures.get(call) ?? []), ...Array.from({ length: times }, () => error)]);
  }

  topicExists(topic: string): Promise<boolean> {
    return this.call('topicExists', () => this.cluster.topics.has(topic));
  }

  createTopic(spec: NewTopic): Promise<'created' | 'existed'> {
    return this.call('createTopic', () => {
      if (this.cluster.topics.has(spec.topic)) return 'existed';
      this.cluster.createTopic(spec.topic, spec.partitions, spec.config);
      this.created.push(spec);
      return 'created';
    });
  }

  endOffsets(topic: string, partitions: number, isolation: Isolation): Promise<number[]> {
    return this.call('endOffsets', () =>
      Array.from({ length: partitions }, (_, p) => {
        const log = this.cluster.partition(topic, p);
        return isolation === 'read_committed' ? log.lastStableOffset : log.highWatermark;
      }),
    );
  }

  retentionPolicy(topic: string): Promise<RetentionPolicy> {
    return this.call('retentionPolicy', () => {
      if (this.retentionAnswer) return this.retentionAnswer;
      const policy = this.cluster.topics.get(topic)?.config['cleanup.policy'] ?? 'delete';
      return policy.split(',').includes('delete') ? { kind: 'time-based' } : { kind: 'compact-only' };
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private call<T>(name: AdminCall, answer: () => T): Promise<T> {
    this.calls.push(name);
    const failure = this.failures.get(name)?.shift();
    if (failure) return Promise.reject(failure);
    try {
      return Promise.resolve(answer());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
