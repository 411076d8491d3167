/**
 * Reading one record of the idempotency topic back by its offset: how a key that the view knows
 * only by its index entry (key-index.ts) gets its outcome replayed. log-outcome-reader.ts reads
 * it through the log port (ports.ts); unit tests also use a fake.
 */

/** A record of the idempotency topic, as stored. */
export interface StoredRecord {
  offset: number;
  key: string | undefined;
  value: Buffer | null;
}

export interface OutcomeReader {
  /**
   * The record at `offset` of `partition`, or undefined when the partition has no record there
   * any more (deleted by retention, or compacted away). Rejects with IdempotencyUnavailableError
   * when it cannot tell within `timeoutMs`, and with AcquireAbortedError when `signal` aborts.
   */
  read(partition: number, offset: number, opts: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<StoredRecord | undefined>;
  /** Stops reading; reads in progress finish first. */
  close(): Promise<void>;
}
