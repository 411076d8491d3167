/**
 * The FIFO line of callers waiting for a free producer. Bounded: past `maxWaiting` a caller is
 * refused at once (load is shed, memory stays flat). Each waiter can give up by timeout or by
 * its AbortSignal, and leaves the line when it does, so a dead waiter never receives a producer.
 */
import { AcquireAbortedError, AcquireTimeoutError, PoolSaturatedError } from '../errors.js';

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
  cleanup(): void;
  settled: boolean;
}

export class WaitQueue<T> {
  // A plain array: shift() on short queues is cheap, and maxWaiting bounds the length.
  private readonly waiters: Waiter<T>[] = [];

  constructor(private readonly maxWaiting: number) {}

  get length(): number {
    return this.waiters.length;
  }

  /** Joins the end of the line; resolves when `serve()` hands this waiter a value. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(new AcquireAbortedError(signal.reason));
    if (this.waiters.length >= this.maxWaiting) {
      return Promise.reject(new PoolSaturatedError(this.waiters.length, this.maxWaiting));
    }
    return new Promise<T>((resolve, reject) => {
      const leave = (error: unknown) => {
        if (waiter.settled) return;
        waiter.settled = true;
        waiter.cleanup();
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(error);
      };
      const onAbort = () => leave(new AcquireAbortedError(signal?.reason));
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => leave(new AcquireTimeoutError(timeoutMs)), timeoutMs)
        : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter: Waiter<T> = {
        settled: false,
        resolve,
        reject,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Hands `value` to the longest waiter; false when nobody waits. */
  serve(value: T): boolean {
    const waiter = this.waiters.shift();
    if (!waiter) return false;
    waiter.settled = true;
    waiter.cleanup();
    waiter.resolve(value);
    return true;
  }

  /** Refuses every waiter (the pool is closing). */
  rejectAll(error: unknown): void {
    for (const waiter of this.waiters.splice(0)) {
      if (waiter.settled) continue;
      waiter.settled = true;
      waiter.cleanup();
      waiter.reject(error);
    }
  }
}
