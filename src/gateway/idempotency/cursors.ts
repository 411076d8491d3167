/**
 * How far each of the two readers has got in each partition of the idempotency topic, and the
 * requests waiting for one of them to get somewhere: a key held by another transaction waits for
 * the committed cursor to pass it, a claim being verified waits for the uncommitted cursor.
 */
import { AcquireAbortedError } from '../../errors.js';
import { IdempotencyUnavailableError } from '../../errors.js';

/** The read_committed reader's position ('committed') or the read_uncommitted one's ('uncommitted'). */
export type Cursor = 'committed' | 'uncommitted';

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** What the IdempotencyUnavailableError says when the wait times out. */
  what?: string;
}

interface Waiter {
  target: number;
  resolve(): void;
  reject(err: Error): void;
}

export class Cursors {
  private readonly positions: Record<Cursor, number[]>;
  private readonly waiters: Record<Cursor, Waiter[][]>;

  constructor(
    readonly partitions: number,
    start: { committed?: number[] | undefined; uncommitted?: number[] | undefined },
  ) {
    const zeros = (): number[] => Array.from({ length: partitions }, () => 0);
    this.positions = { committed: start.committed?.slice() ?? zeros(), uncommitted: start.uncommitted?.slice() ?? zeros() };
    this.waiters = { committed: Array.from({ length: partitions }, () => []), uncommitted: Array.from({ length: partitions }, () => []) };
  }

  position(cursor: Cursor, partition: number): number {
    return this.positions[cursor][partition] ?? 0;
  }

  /** Moves a cursor forward (never back) and wakes whoever waits for it; false if it did not move. */
  advance(cursor: Cursor, partition: number, position: number): boolean {
    const positions = this.positions[cursor];
    if (partition >= positions.length || position <= positions[partition]!) return false;
    positions[partition] = position;
    const waiting = this.waiters[cursor][partition]!;
    if (waiting.length === 0) return true;
    const still: Waiter[] = [];
    for (const w of waiting) {
      if (position >= w.target) w.resolve();
      else still.push(w);
    }
    this.waiters[cursor][partition] = still;
    return true;
  }

  /** Resolves once the cursor reaches `target`; IdempotencyUnavailableError at the deadline. */
  waitFor(cursor: Cursor, partition: number, target: number, opts: WaitOptions): Promise<void> {
    if (this.position(cursor, partition) >= target) return Promise.resolve();
    if (opts.signal?.aborted) return Promise.reject(new AcquireAbortedError(opts.signal.reason));
    return new Promise<void>((resolve, reject) => {
      const list = this.waiters[cursor][partition]!;
      const done = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const remove = (): void => {
        const ws = this.waiters[cursor][partition]!;
        const at = ws.indexOf(waiter);
        if (at >= 0) ws.splice(at, 1);
      };
      const waiter: Waiter = {
        target,
        resolve: () => {
          done();
          resolve();
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      const onAbort = (): void => {
        done();
        remove();
        reject(new AcquireAbortedError(opts.signal?.reason));
      };
      const timer = setTimeout(() => {
        done();
        remove();
        reject(
          new IdempotencyUnavailableError(
            `${opts.what ?? 'the idempotency topic'} did not catch up within ${opts.timeoutMs} ms ` +
              `(partition ${partition}: ${cursor} position ${this.position(cursor, partition)}, needed ${target})`,
          ),
        );
      }, Math.max(0, opts.timeoutMs));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      list.push(waiter);
    });
  }

  /** Fails every waiter (the store is closing). */
  failWaiters(err: Error): void {
    for (const cursor of ['committed', 'uncommitted'] as const) {
      for (let p = 0; p < this.partitions; p++) {
        const ws = this.waiters[cursor][p]!;
        this.waiters[cursor][p] = [];
        for (const w of ws) w.reject(err);
      }
    }
  }
}
