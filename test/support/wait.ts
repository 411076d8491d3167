/**
 * Polling, for tests and benchmarks: the one implementation. No Kafka here, so that unit tests on
 * fakes can use it without loading the Kafka client (test/support/kafka.ts re-exports it for the
 * integration tests).
 */

export interface WaitOptions {
  /** Give up (throw) after this long; default 30 s. */
  timeoutMs?: number;
  /** Pause between two checks; default 50 ms. */
  intervalMs?: number;
  /** What is awaited, for the timeout's message. */
  what?: string;
}

/**
 * For tests on fakes (test/support/fake-producer.ts), where state changes within a few turns of the
 * event loop: check every millisecond, give up after 2 s. Spread it, then override what differs:
 * `waitFor(cond, { ...ON_FAKES, what: 'three waiters' })`.
 */
export const ON_FAKES = { timeoutMs: 2_000, intervalMs: 1 } as const satisfies WaitOptions;

/**
 * Polls `condition` until it returns a truthy value (returned) or the deadline passes (throws).
 * A synchronous condition is checked synchronously: a test on fakes sees the state at once.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = condition();
    const v = isPromiseLike(result) ? await result : result;
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'a condition'}`);
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 50));
  }
}

function isPromiseLike<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}
