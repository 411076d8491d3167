/** PoolOptions checked and completed with their defaults, once, when the pool is built. */
import { ConfigurationError } from '../errors.js';
import type { PoolOptions, RetryOptions } from './types.js';

export type ResolvedOptions = Required<Omit<PoolOptions, 'events' | 'retry'>> & Pick<PoolOptions, 'events'> & { retry: RetryOptions };

const DEFAULTS = {
  acquireTimeoutMs: 5_000,
  initTimeoutMs: 30_000,
  commitTimeoutMs: 10_000,
  abortTimeoutMs: 10_000,
  closeTimeoutMs: 10_000,
  refreshIdleAfterMs: 24 * 60 * 60 * 1000,
  healthCheckIntervalMs: 60_000,
  replaceBackoffMs: 500,
  retry: { deadlineMs: 30_000, initialBackoffMs: 20, maxBackoffMs: 1_000 },
};

export function resolveOptions(options: PoolOptions): ResolvedOptions {
  if (!Number.isInteger(options.size) || options.size < 1) throw new ConfigurationError('pool size must be an integer >= 1');
  if (!options.transactionalIdPrefix) throw new ConfigurationError('transactionalIdPrefix must not be empty');
  if (!options.instanceId) throw new ConfigurationError('instanceId must not be empty');
  return {
    ...DEFAULTS,
    maxWaiting: options.size * 64,
    ...stripUndefined(options),
    retry: { ...DEFAULTS.retry, ...stripUndefined(options.retry ?? {}) },
  } as ResolvedOptions;
}

/** An option passed as `undefined` means "the default", not "no value". */
function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
