/**
 * The port between the pool and a Kafka client. The pool only ever talks to Kafka through this
 * interface, so the client can be swapped (the Kafka client adapter in
 * src/kafka, a deterministic fake in the unit tests) without touching pool logic.
 *
 * One TransactionalProducer is one transactional.id: the pool guarantees that at most one
 * caller uses it at a time, and that begin/commit/abort are never called concurrently.
 */

export interface OutgoingRecord {
  topic: string;
  /** Omitted: the client's partitioner chooses (by key when there is one). */
  partition?: number | undefined;
  key?: Buffer | null | undefined;
  value: Buffer | null;
  headers?: Record<string, string | Buffer> | undefined;
  /** Milliseconds since the epoch; omitted: the time of sending. */
  timestamp?: number | undefined;
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  /** A decimal string: Kafka offsets are 64-bit and do not fit a JS number. */
  offset: string;
}

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to consume (last processed + 1), as Kafka commits it. */
  offset: number | string;
}

/**
 * An error from the Kafka client, carrying what librdkafka (and KIP-1050) say about it.
 * Adapters convert their client's errors to this shape; src/pool/classify.ts decides what to do.
 */
export interface KafkaErrorFlags {
  /** The client's numeric error code (librdkafka's: negative for local errors, the broker's otherwise). */
  code: number;
  /** The symbolic name, e.g. PRODUCER_FENCED or _TIMED_OUT, when known. */
  codeName?: string | undefined;
  fatal: boolean;
  retriable: boolean;
  /** The transaction cannot commit and must be aborted; the producer stays usable afterwards. */
  txnRequiresAbort: boolean;
}

export class KafkaClientError extends Error implements KafkaErrorFlags {
  readonly code: number;
  readonly codeName: string | undefined;
  readonly fatal: boolean;
  readonly retriable: boolean;
  readonly txnRequiresAbort: boolean;
  constructor(message: string, flags: KafkaErrorFlags, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KafkaClientError';
    this.code = flags.code;
    this.codeName = flags.codeName;
    this.fatal = flags.fatal;
    this.retriable = flags.retriable;
    this.txnRequiresAbort = flags.txnRequiresAbort;
  }
}

export interface TransactionalProducer {
  readonly transactionalId: string;
  /** Connects and runs initTransactions (InitProducerId): fences any older holder of the id. */
  init(timeoutMs: number): Promise<void>;
  begin(): Promise<void>;
  /** Resolves when the broker has acknowledged the record (within the open transaction). */
  send(record: OutgoingRecord): Promise<RecordMetadata>;
  /**
   * Adds a consumer's offsets to the open transaction (KIP-447). `consumer` is the client's own
   * consumer object; the adapter takes its group metadata from it.
   */
  sendOffsets(offsets: TopicPartitionOffset[], consumer: unknown, timeoutMs: number): Promise<void>;
  commit(timeoutMs: number): Promise<void>;
  abort(timeoutMs: number): Promise<void>;
  /** Releases sockets and threads. Never throws; a broken producer must still close. */
  close(timeoutMs: number): Promise<void>;
}

/** Creates the producer for one pool slot; called again with the same id to replace a broken one. */
export type ProducerFactory = (transactionalId: string) => TransactionalProducer;
