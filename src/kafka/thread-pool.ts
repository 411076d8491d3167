/**
 * Every blocking transactional call of the native client (init, commit, abort, send offsets)
 * holds one libuv thread-pool thread until the broker answers. With Node's default of 4 threads,
 * a pool of 8 producers would queue its commits behind each other, and a slow broker would also
 * stall fs and dns work. libuv reads UV_THREADPOOL_SIZE once, when the thread pool is first
 * used, so it can only be set before the process starts (bin/txgate.cjs does); here we check it.
 */
import { ConfigurationError } from '../errors.js';

const LIBUV_DEFAULT = 4;
/** Threads left for fs, dns and crypto work beside the producers. */
const SPARE_THREADS = 2;

export function configuredThreadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10);
  return Number.isFinite(value) && value > 0 ? Math.min(value, 1024) : LIBUV_DEFAULT;
}

export function requiredThreadPoolSize(producers: number): number {
  return producers + SPARE_THREADS;
}

/** Throws a ConfigurationError that says how to fix it when `producers` cannot all block at once. */
export function assertThreadPoolFits(producers: number, env: NodeJS.ProcessEnv = process.env): void {
  const have = configuredThreadPoolSize(env);
  const need = requiredThreadPoolSize(producers);
  if (have >= need) return;
  throw new ConfigurationError(
    `UV_THREADPOOL_SIZE is ${have}${env.UV_THREADPOOL_SIZE ? '' : ' (the default)'}, too small for ${producers} ` +
      `transactional producers: each blocking transactional call holds one libuv thread. Start node with ` +
      `UV_THREADPOOL_SIZE=${Math.max(need, 64)} (the txgate CLI sets it for you), or use a smaller pool.`,
  );
}
