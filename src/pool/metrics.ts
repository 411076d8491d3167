/**
 * Prometheus metrics for a pool, through prom-client. Optional: a pool without `events` pays
 * nothing. Counters and histograms are fed by PoolEvents; gauges read pool.stats() at scrape time,
 * so they are never stale and cost nothing between scrapes.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PoolEvents, PoolStats } from './types.js';

export interface PoolMetrics {
  /** Pass as PoolOptions.events (or combine with your own via combineEvents). */
  events: PoolEvents;
  /** Registers the gauges that read the pool's state at scrape time. */
  observe(pool: { stats(): PoolStats }): void;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createPoolMetrics(registry: Registry, prefix = 'txgate_pool_'): PoolMetrics {
  const registers = [registry];
  const histogram = (name: string, help: string, labelNames: string[] = []) =>
    new Histogram({ name: `${prefix}${name}`, help, labelNames, buckets: DURATION_BUCKETS, registers });
  const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name: `${prefix}${name}`, help, labelNames, registers });
  const acquireWait = histogram('acquire_wait_seconds', 'Time callers waited for a free producer');
  const duration = histogram('transaction_duration_seconds', 'Time from acquiring a producer to the end of its transaction, by outcome', ['outcome']);
  const transactions = counter('transactions_total', 'Transactions by outcome (committed, aborted, unknown)', ['outcome']);
  const records = counter('records_committed_total', 'Records in committed transactions');
  const retries = counter('retries_total', 'Retried transactional calls by step', ['step']);
  const replacements = counter('replacements_total', 'Producers replaced in their slot, by cause', ['cause']);
  const rejected = counter('rejected_total', 'Callers refused before a transaction began, by reason', ['reason']);
  const initFailures = counter('init_failures_total', 'Producer initialisations that failed (at start or while replacing; retried with backoff)');
  const fencingStorms = counter('fencing_storms_total', 'Slots fenced again and again: another live process very likely uses the same transactional ids');
  for (const outcome of ['committed', 'aborted', 'unknown']) transactions.inc({ outcome }, 0);

  const events: PoolEvents = {
    acquired: ({ waitedMs }) => acquireWait.observe(waitedMs / 1000),
    committed: ({ durationMs, records: n }) => {
      duration.observe({ outcome: 'committed' }, durationMs / 1000);
      transactions.inc({ outcome: 'committed' });
      records.inc(n);
    },
    aborted: ({ durationMs }) => {
      duration.observe({ outcome: 'aborted' }, durationMs / 1000);
      transactions.inc({ outcome: 'aborted' });
    },
    outcomeUnknown: ({ durationMs }) => {
      duration.observe({ outcome: 'unknown' }, durationMs / 1000);
      transactions.inc({ outcome: 'unknown' });
    },
    retried: ({ step }) => retries.inc({ step }),
    replacing: ({ cause }) => replacements.inc({ cause }),
    rejected: ({ reason }) => rejected.inc({ reason }),
    initFailed: () => initFailures.inc(),
    fencingStorm: () => fencingStorms.inc(),
  };

  return {
    events,
    observe(pool) {
      const gauge = (name: string, help: string, read: () => number) =>
        new Gauge({
          name: `${prefix}${name}`,
          help,
          registers,
          collect() {
            this.set(read());
          },
        });
      gauge('size', 'Producers in the pool', () => pool.stats().size);
      gauge('busy', 'Producers lent to a caller', () => pool.stats().busy);
      gauge('idle', 'Producers ready to lend', () => pool.stats().idle);
      gauge('replacing', 'Producers being replaced', () => pool.stats().replacing);
      gauge('waiting', 'Callers waiting for a producer', () => pool.stats().waiting);
      gauge('max_waiting', 'The wait queue bound: past it callers are refused at once (saturated)', () => pool.stats().maxWaiting);
      new Gauge({
        name: `${prefix}slot_state_seconds`,
        help: 'How long each slot has been in its current state (a slot stuck replacing shows here)',
        labelNames: ['slot', 'state'],
        registers,
        collect() {
          this.reset();
          const now = Date.now();
          for (const s of pool.stats().slots) this.set({ slot: String(s.slot), state: s.state }, (now - s.stateSince) / 1000);
        },
      });
    },
  };
}

/** Fans one pool's events out to several observers (metrics, logs, tests). */
export function combineEvents(...observers: Array<PoolEvents | undefined>): PoolEvents {
  const list = observers.filter((o): o is PoolEvents => o !== undefined);
  const fan =
    <K extends keyof PoolEvents>(key: K) =>
    (info: Parameters<NonNullable<PoolEvents[K]>>[0]) => {
      for (const o of list) (o[key] as ((i: typeof info) => void) | undefined)?.(info);
    };
  return {
    acquired: fan('acquired'),
    committed: fan('committed'),
    aborted: fan('aborted'),
    outcomeUnknown: fan('outcomeUnknown'),
    retried: fan('retried'),
    replacing: fan('replacing'),
    replaced: fan('replaced'),
    rejected: fan('rejected'),
    initFailed: fan('initFailed'),
    fencingStorm: fan('fencingStorm'),
  };
}
