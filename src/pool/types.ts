import type { OutgoingRecord, ProducerFactory, RecordMetadata, TopicPartitionOffset } from './producer-port.js';

export interface RetryOptions {
  /** Total time a retriable step (begin, commit, send offsets) may keep retrying. */
  deadlineMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export interface PoolOptions {
  /** Builds one producer for a slot's transactional id (see src/kafka for the default). */
  producerFactory: ProducerFactory;
  /** Number of producers, created and initialised up front. */
  size: number;
  /** Ids are `<prefix>-<instanceId>-<slot>`: stable per slot and instance, never per request. */
  transactionalIdPrefix: string;
  instanceId: string;
  /** Callers that may wait for a producer; past it they are refused with PoolSaturatedError. */
  maxWaiting?: number;
  /** Default for run(): how long a caller waits for a free producer. */
  acquireTimeoutMs?: number;
  initTimeoutMs?: number;
  commitTimeoutMs?: number;
  abortTimeoutMs?: number;
  closeTimeoutMs?: number;
  retry?: Partial<RetryOptions>;
  /** A slot idle this long is re-initialised so its transactional id never expires on the coordinator. */
  refreshIdleAfterMs?: number;
  /** How often idle slots are checked (refresh, and replacing slots that failed to come back). */
  healthCheckIntervalMs?: number;
  /** Delay before retrying a slot whose producer failed to initialise. */
  replaceBackoffMs?: number;
  /** Optional observer of what the pool does (metrics and logs hang off it). */
  events?: PoolEvents;
}

export type SlotState = 'starting' | 'idle' | 'busy' | 'replacing' | 'closed';

export type ReplaceCause = 'fenced' | 'fatal' | 'unknown-state' | 'refresh' | 'init-failed' | 'record-refused';

export interface PoolEvents {
  acquired?(info: { slot: number; waitedMs: number }): void;
  committed?(info: { slot: number; durationMs: number; records: number; commitAttempts: number }): void;
  aborted?(info: { slot: number; durationMs: number; reason: unknown }): void;
  outcomeUnknown?(info: { slot: number; durationMs: number; reason: unknown }): void;
  retried?(info: { slot: number; step: 'begin' | 'commit' | 'send-offsets'; error: unknown }): void;
  replacing?(info: { slot: number; transactionalId: string; cause: ReplaceCause; error?: unknown }): void;
  replaced?(info: { slot: number; transactionalId: string; cause: ReplaceCause }): void;
  rejected?(info: { reason: 'saturated' | 'timeout' | 'aborted' | 'closed' }): void;
  /** Initialising a producer (at start or while replacing one) failed; it is retried with backoff. */
  initFailed?(info: { slot: number; transactionalId: string; error: unknown }): void;
  /**
   * A slot was fenced `fencings` times in 5 minutes: another live process very likely uses the
   * same transactional id (the same prefix and instance id). Its replacement waits `delayMs`.
   */
  fencingStorm?(info: { slot: number; transactionalId: string; fencings: number; delayMs: number }): void;
}

export interface RunOptions {
  signal?: AbortSignal;
  acquireTimeoutMs?: number;
}

/** The handle a caller's work gets: valid only until its callback returns. */
export interface Transaction {
  readonly transactionalId: string;
  readonly slot: number;
  /** Sends records into this transaction; resolves with their positions once the broker has them. */
  send(records: OutgoingRecord | OutgoingRecord[]): Promise<RecordMetadata[]>;
  /** Commits a consumer's offsets inside this transaction (exactly-once consume-transform-produce). */
  sendOffsets(offsets: TopicPartitionOffset[], consumer: unknown): Promise<void>;
}

export interface TransactionResult<T> {
  value: T;
  /** Every record the transaction sent, in the order of send() calls. */
  records: RecordMetadata[];
  transactionalId: string;
  slot: number;
}

export interface SlotStats {
  slot: number;
  transactionalId: string;
  state: SlotState;
  /** Since when (ms since the epoch) the slot has been in its state. */
  stateSince: number;
  transactions: number;
  replacements: number;
  lastError?: string | undefined;
}

export interface PoolStats {
  size: number;
  idle: number;
  busy: number;
  replacing: number;
  waiting: number;
  /** The bound of the wait queue: past it callers are refused at once (saturated). */
  maxWaiting: number;
  closed: boolean;
  slots: SlotStats[];
  counters: {
    committed: number;
    aborted: number;
    outcomeUnknown: number;
    retries: number;
    replacements: number;
    rejected: number;
  };
}
