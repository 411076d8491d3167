/**
 * An OutcomeReader over records the test puts in, for replay tests without a broker: it counts
 * reads, and answers like Kafka would (the record at the offset, or the next one, or nothing).
 */
import type { OutcomeReader, StoredRecord } from '../../src/gateway/idempotency/outcome-reader.js';
import { IdempotencyUnavailableError } from '../../src/errors.js';

export class FakeOutcomeReader implements OutcomeReader {
  readonly reads: Array<{ partition: number; offset: number }> = [];
  /** When set, every read fails with it (the broker unreachable). */
  failure: Error | undefined;
  closed = false;
  private readonly partitions = new Map<number, StoredRecord[]>();

  /** Appends a record as the partition's record at `offset`. */
  put(partition: number, offset: number, key: string | undefined, value: Buffer | null): void {
    const list = this.partitions.get(partition) ?? [];
    list.push({ offset, key, value });
    list.sort((a, b) => a.offset - b.offset);
    this.partitions.set(partition, list);
  }

  /** Removes the record at `offset` (compaction or retention). */
  remove(partition: number, offset: number): void {
    this.partitions.set(partition, (this.partitions.get(partition) ?? []).filter((r) => r.offset !== offset));
  }

  read(partition: number, offset: number): Promise<StoredRecord | undefined> {
    this.reads.push({ partition, offset });
    if (this.closed) return Promise.reject(new IdempotencyUnavailableError('closed'));
    if (this.failure) return Promise.reject(this.failure);
    // Like a consumer assigned at `offset`: the first record at or after it.
    return Promise.resolve(this.partitions.get(partition)?.find((r) => r.offset >= offset));
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
