/**
 * What the parts of the pool (lending, transactions, replacement, close) share: the options, the
 * slots, the counters, whether the pool is started or closing, and the background work close()
 * must wait for.
 */
import type { ResolvedOptions } from './options.js';
import { SlotTable } from './slot.js';
import type { PoolStats } from './types.js';

export class PoolContext {
  readonly slots: SlotTable;
  readonly counters: PoolStats['counters'] = { committed: 0, aborted: 0, outcomeUnknown: 0, retries: 0, replacements: 0, rejected: 0 };
  started = false;
  /** Set once, by close() or a failed start(); never cleared. */
  closing = false;
  /** Aborted on close: stops replacement loops and their sleeps. */
  private readonly life = new AbortController();
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(readonly options: ResolvedOptions) {
    this.slots = new SlotTable(
      Array.from({ length: options.size }, (_, index) => `${options.transactionalIdPrefix}-${options.instanceId}-${index}`),
    );
  }

  get lifetime(): AbortSignal {
    return this.life.signal;
  }

  endLifetime(): void {
    this.life.abort();
  }

  /** Counts `job` as in flight until it settles: close() waits for it. */
  track<T>(job: Promise<T>): Promise<T> {
    this.inFlight.add(job);
    const forget = () => this.inFlight.delete(job);
    job.then(forget, forget);
    return job;
  }

  /** Resolves once no run() and no replacement is in flight, including ones started meanwhile. */
  async drain(): Promise<true> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    return true;
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
