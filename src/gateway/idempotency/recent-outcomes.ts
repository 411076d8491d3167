/**
 * The full outcomes of recently committed keys, so that a client's prompt retry (the usual
 * retry: its connection dropped, or it timed out a moment before the commit) replays from memory
 * instead of reading the outcome record back from Kafka. Bounded, oldest first out: a Map keeps
 * insertion order, and each write moves its key to the end.
 *
 * Bounded by outcomes and by the records they list together (a request may carry up to 1000
 * records, so a count of outcomes alone would not bound the memory).
 */
import type { CommittedOutcome } from './record-format.js';

export interface RecentOutcomesLimits {
  /** Outcomes held at most (default 50,000). */
  maxOutcomes?: number;
  /** Records listed by the held outcomes together, at most (default 250,000; about 30 MB). */
  maxRecords?: number;
}

export const DEFAULT_RECENT_OUTCOMES = 50_000;
export const DEFAULT_RECENT_RECORDS = 250_000;

export interface RecentOutcome {
  outcome: CommittedOutcome;
  /** Offset of the outcome record in the idempotency topic. */
  offset: number;
}

export class RecentOutcomes {
  private readonly entries = new Map<string, RecentOutcome>();
  private records = 0;
  readonly maxOutcomes: number;
  readonly maxRecords: number;

  constructor(limits: RecentOutcomesLimits = {}) {
    this.maxOutcomes = limits.maxOutcomes ?? DEFAULT_RECENT_OUTCOMES;
    this.maxRecords = limits.maxRecords ?? DEFAULT_RECENT_RECORDS;
    for (const [name, v] of [['maxOutcomes', this.maxOutcomes], ['maxRecords', this.maxRecords]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): RecentOutcome | undefined {
    return this.entries.get(key);
  }

  /** Holds the outcome, unless a newer one (a higher offset) of the key is held already. */
  set(key: string, outcome: CommittedOutcome, offset: number): void {
    const current = this.entries.get(key);
    if (current) {
      if (current.offset > offset) return;
      this.delete(key);
    }
    const weight = outcome.records.length;
    if (this.maxOutcomes === 0 || weight > this.maxRecords) return;
    this.entries.set(key, { outcome, offset });
    this.records += weight;
    while (this.entries.size > this.maxOutcomes || this.records > this.maxRecords) {
      const oldest = this.entries.keys().next().value!;
      this.delete(oldest);
    }
  }

  delete(key: string): void {
    const current = this.entries.get(key);
    if (!current) return;
    this.entries.delete(key);
    this.records -= current.outcome.records.length;
  }
}
