/** Exponential backoff with full jitter (AWS's recommendation): spreads retries of many slots apart. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** attempt);
  return Math.max(1, Math.round(ceiling * (0.5 + random() / 2)));
}

/**
 * Resolves true after `ms`, or false at once when `signal` aborts. Background loops pass
 * `unref` so a pending retry never keeps an otherwise finished process alive.
 */
export function sleep(ms: number, signal?: AbortSignal, unref = false): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    if (unref) timer.unref();
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
