/**
 * What the idempotency store needs of Kafka, as ports: the Kafka adapters in src/kafka implement
 * them, and the unit tests implement them in memory. Only what the protocol (docs/idempotency.md)
 * relies on is promised here:
 *
 * - a partition is totally ordered, and a reader sees its records in offset order;
 * - a read_uncommitted reader delivers every record up to the high watermark, open or aborted
 *   transactions included;
 * - a read_committed reader delivers only records of committed transactions, skips aborted ones,
 *   and never goes past the last stable offset (LSO), which stays at the first offset of the
 *   earliest transaction still open: an open transaction holds it back;
 * - transaction markers take an offset but are never delivered.
 */

/** The two consumers of the protocol: C (read_committed) and U (read_uncommitted). */
export type Isolation = 'read_committed' | 'read_uncommitted';

/** What a poll brought, in the order the reader saw it. */
export type LogEvent =
  /** A record of the topic (a claim, an outcome, or a tombstone when `value` is null). */
  | { kind: 'record'; partition: number; offset: number; key: string | undefined; value: Buffer | null }
  /**
   * The reader reached the end of the partition: `offset` is where it would read next, the LSO
   * for read_committed, the high watermark for read_uncommitted. Every offset below it was
   * delivered or skipped (aborted records, markers). Reported once each time the end is reached,
   * after the records before it: how a reader passes a trailing marker or aborted records.
   */
  | { kind: 'end'; partition: number; offset: number };

/** Where a reader starts in a partition. */
export interface Assignment {
  partition: number;
  /** 'beginning' or an offset; an offset below the log start (records deleted) reads from the earliest one left. */
  offset: number | 'beginning';
}

export interface ReaderOptions {
  topic: string;
  isolation: Isolation;
  /**
   * What the reader is for, so the adapter can tune its fetching: 'tail' follows whole partitions
   * (and loads them at start, as fast as it can); 'lookup' reads single records by offset.
   */
  use: 'tail' | 'lookup';
  /** Deadline for connecting. */
  timeoutMs: number;
  /** Errors the client reports outside any call (it retries them itself): for the log. */
  onError?: ((err: unknown) => void) | undefined;
}

/** A reader's view of the topic's partitions. */
export interface TopicLayout {
  partitions: number;
  /** Partitions without a leader yet (a topic created a moment ago): nothing can be read from them. */
  withoutLeader: number;
}

/** A poll failed in a way polling again cannot fix (the reader was closed under it). */
export class LogReaderStoppedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LogReaderStoppedError';
  }
}

/** One consumer of one topic, by manual assignment (no consumer group offsets are committed). */
export interface LogReader {
  /** Brokers the cluster's metadata listed when this reader connected (caps a new topic's replication). */
  readonly brokers: number;
  /** The topic as this reader's metadata knows it; undefined while it does not know the topic. */
  describe(timeoutMs: number): Promise<TopicLayout | undefined>;
  /** Replaces the assignment. */
  assign(assignments: Assignment[]): void;
  unassign(): void;
  /**
   * Waits up to `waitMs` for something to read, then returns what is ready, at most `maxRecords`
   * records (and the ends reached among them). Rejects when reading failed: poll again later;
   * with LogReaderStoppedError when it never will. One poll at a time.
   */
  poll(maxRecords: number, waitMs: number): Promise<LogEvent[]>;
  /** Disconnects. Only once no poll is pending: closing under one is unsafe for the native client. */
  close(): Promise<void>;
}

/** Opens readers of the idempotency topic. */
export interface IdempotencyLog {
  /** A connected reader; rejects when it cannot connect within opts.timeoutMs (the caller retries). */
  openReader(opts: ReaderOptions): Promise<LogReader>;
}

export interface NewTopic {
  topic: string;
  partitions: number;
  replicationFactor: number;
  config: Record<string, string>;
}

/** What the broker does with the topic's old records. */
export type RetentionPolicy =
  /** cleanup.policy includes "delete": it deletes them by time. */
  | { kind: 'time-based' }
  /** Compaction only: it keeps the latest record of every key forever. */
  | { kind: 'compact-only' }
  /** It cannot be told, for a reason retrying does not fix (`reason`: for the operator). */
  | { kind: 'unknown'; reason: string };

/**
 * Creating and inspecting the idempotency topic. Errors keep the client's numeric `code`, so that
 * start-up can tell the ones no retry fixes (authorization, configuration) from the cluster
 * settling (startup.ts).
 */
export interface TopicAdmin {
  /** The cluster's address as an operator would pass it to Kafka's tools (in advice), if known. */
  readonly bootstrapServers: string | undefined;
  topicExists(topic: string, timeoutMs: number): Promise<boolean>;
  /** 'existed' when the topic was there already (another instance created it first). */
  createTopic(spec: NewTopic, timeoutMs: number): Promise<'created' | 'existed'>;
  /**
   * Each partition's end for a reader at `isolation`: the LSO for read_committed, the high
   * watermark for read_uncommitted. Rejects if any partition cannot answer.
   */
  endOffsets(topic: string, partitions: number, isolation: Isolation, timeoutMs: number): Promise<number[]>;
  /** Rejects when the broker could not be asked (retry). */
  retentionPolicy(topic: string, timeoutMs: number): Promise<RetentionPolicy>;
  close(): Promise<void>;
}

/** Everything the store needs of Kafka. The store closes them when it closes. */
export interface IdempotencyPorts {
  log: IdempotencyLog;
  admin: TopicAdmin;
}
