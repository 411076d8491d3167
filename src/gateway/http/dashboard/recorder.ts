/**
 * What the dashboard shows, kept cheaply: per request, one latency bucket and two counters are
 * incremented (observeRequest); once a second, sample() reads the pool's and the service's
 * cumulative counters and appends one interval to a ring of the last 10 minutes (rates, requests
 * per transaction, latency percentiles, gauges). A snapshot is assembled only when asked, so
 * nobody watching costs one small sample a second.
 *
 * It records codes and route templates only, never topic names, paths or error messages: what it
 * returns may be shown to anyone holding an API key, whatever topics that key may write.
 */
import type { PoolStats, SlotStats } from '../../../pool/types.js';
import type { ServiceStats } from '../metrics.js';
import { problemType, type ProblemCode } from '../problems.js';
import { latencyBucket, newLatencyCounts, quantileMs, sum } from './latency.js';

export interface StatsSources {
  service(): ServiceStats;
  /** Absent when the gateway runs without a pool of its own (tests). */
  pool?: (() => PoolStats) | undefined;
}

export interface RecorderOptions {
  /** Intervals kept (default 600: 10 minutes of 1 s samples). */
  capacity?: number;
  /** Completed intervals the headline percentiles cover (default 60). */
  latencyWindow?: number;
  /** Distinct problem codes listed, most recent first (default 20). */
  maxErrorCodes?: number;
  /** Milliseconds since the epoch (tests replace it). */
  now?: () => number;
}

/** Per interval: rates are per second; null where the interval had nothing to measure. */
export const SERIES_NAMES = [
  'committed', // transactions committed per second
  'aborted',
  'outcomeUnknown',
  'requests', // requests committed per second
  'httpRequests', // POST /v1/transactions answered per second, any status
  'httpErrors', // ... of which answered 4xx or 5xx
  'requestsPerTransaction', // committed requests / committed transactions in the interval
  'p50Ms', // latency of the POST /v1/transactions answered in the interval
  'p99Ms',
  'waiting', // requests accepted and not yet answered, at the end of the interval
  'busy', // producers in a transaction, at the end of the interval
  'idempotencyKeys',
] as const;
export type SeriesName = (typeof SERIES_NAMES)[number];

/** A slot as the dashboard shows it: without its last error's text, which can name a topic. */
export type SlotView = Omit<SlotStats, 'lastError'>;

export interface ErrorCount {
  code: ProblemCode;
  /** The problem's page (GET /problems/<slug>), as in the problem document's `type`. */
  type: string;
  status: number;
  count: number;
  /** When it was last answered (ms since the epoch), and on which method and route template. */
  lastAt: number;
  method: string;
  route: string;
}

export interface StatsSnapshot {
  /** When this recorder started (ms since the epoch): a new value means the gateway restarted. */
  startedAt: number;
  now: number;
  intervalMs: number;
  /** The pool's stats without its counters (those are in totals), and slots without their error text. */
  pool: (Omit<PoolStats, 'counters' | 'slots'> & { slots: SlotView[] }) | null;
  service: { pendingRequests: number; openBatches: number; idempotencyKeys: number };
  /** Cumulative since the gateway started: the same counters /metrics exposes. */
  totals: PoolStats['counters'] & {
    transactions: number;
    requests: number;
    batchedRequests: number;
    httpRequests: number;
    httpErrors: number;
  };
  latency: { windowSeconds: number; count: number; p50Ms: number | null; p99Ms: number | null };
  /** Intervals after the `since` asked for (all kept ones without it), oldest first. */
  series: { firstSeq: number; lastSeq: number; t: number[] } & Record<SeriesName, Array<number | null>>;
  errors: ErrorCount[];
}

interface Cumulative {
  at: number;
  committed: number;
  aborted: number;
  outcomeUnknown: number;
  transactions: number;
  requests: number;
  httpRequests: number;
  httpErrors: number;
}

export const SAMPLE_INTERVAL_MS = 1_000;

export class StatsRecorder {
  readonly startedAt: number;
  readonly #sources: StatsSources;
  readonly #now: () => number;
  readonly #capacity: number;
  readonly #maxErrorCodes: number;
  // The ring, one column per series (NaN: null), like the arrays a chart takes.
  readonly #t: Float64Array;
  readonly #columns: Record<SeriesName, Float64Array>;
  /** Sequence number of the newest interval; intervals are numbered from 1. */
  #lastSeq = 0;
  #previous: Cumulative | undefined;
  // Latencies of the interval in progress, and of the last completed ones (a ring too).
  #latency = newLatencyCounts();
  readonly #latencyRing: Uint32Array[];
  #latencyMerged: { seq: number; p50Ms: number | null; p99Ms: number | null; count: number } | undefined;
  #httpRequests = 0;
  #httpErrors = 0;
  readonly #errors = new Map<ProblemCode, ErrorCount>();

  constructor(sources: StatsSources, opts: RecorderOptions = {}) {
    this.#sources = sources;
    this.#now = opts.now ?? Date.now;
    this.startedAt = this.#now();
    this.#capacity = opts.capacity ?? 600;
    this.#maxErrorCodes = opts.maxErrorCodes ?? 20;
    this.#t = new Float64Array(this.#capacity);
    this.#columns = Object.fromEntries(SERIES_NAMES.map((name) => [name, new Float64Array(this.#capacity)])) as Record<SeriesName, Float64Array>;
    this.#latencyRing = Array.from({ length: opts.latencyWindow ?? 60 }, newLatencyCounts);
  }

  /** One POST /v1/transactions answered: the whole per-request cost of the dashboard. */
  observeRequest(elapsedMs: number, status: number): void {
    this.#latency[latencyBucket(elapsedMs)]!++;
    this.#httpRequests++;
    if (status >= 400) this.#httpErrors++;
  }

  /** A request (on any route) answered with a problem document. */
  observeProblem(code: ProblemCode, status: number, method: string, route: string): void {
    const lastAt = this.#now();
    const entry = this.#errors.get(code);
    // Re-inserted on every problem, so the map's order is the order of last occurrence even when
    // several codes share a millisecond.
    this.#errors.delete(code);
    if (entry) {
      entry.count++;
      entry.status = status;
      entry.lastAt = lastAt;
      entry.method = method;
      entry.route = route;
      this.#errors.set(code, entry);
    } else {
      this.#errors.set(code, { code, type: problemType(code), status, count: 1, lastAt, method, route });
    }
  }

  /**
   * Closes the interval in progress: call once a second. The first call only sets the baseline.
   * A counter that went backwards (a pool replaced during start-up starts from zero) counts as
   * nothing for that interval.
   */
  sample(): void {
    const service = this.#sources.service();
    const pool = this.#sources.pool?.();
    const now: Cumulative = {
      at: this.#now(),
      committed: pool?.counters.committed ?? 0,
      aborted: pool?.counters.aborted ?? 0,
      outcomeUnknown: pool?.counters.outcomeUnknown ?? 0,
      transactions: service.transactions,
      requests: service.requests,
      httpRequests: this.#httpRequests,
      httpErrors: this.#httpErrors,
    };
    const before = this.#previous;
    this.#previous = now;
    const latency = this.#latency;
    if (!before || now.at <= before.at) {
      latency.fill(0);
      return;
    }
    const seconds = (now.at - before.at) / 1000;
    const delta = (k: Exclude<keyof Cumulative, 'at'>) => Math.max(0, now[k] - before[k]);
    const rate = (k: Exclude<keyof Cumulative, 'at'>) => Math.round((delta(k) / seconds) * 100) / 100;
    const count = sum(latency);
    const transactions = delta('transactions');

    const seq = ++this.#lastSeq;
    const i = seq % this.#capacity;
    this.#t[i] = now.at;
    const c = this.#columns;
    c.committed[i] = rate('committed');
    c.aborted[i] = rate('aborted');
    c.outcomeUnknown[i] = rate('outcomeUnknown');
    c.requests[i] = rate('requests');
    c.httpRequests[i] = rate('httpRequests');
    c.httpErrors[i] = rate('httpErrors');
    c.requestsPerTransaction[i] = transactions > 0 ? Math.round((delta('requests') / transactions) * 100) / 100 : NaN;
    c.p50Ms[i] = quantileMs(latency, 0.5, count) ?? NaN;
    c.p99Ms[i] = quantileMs(latency, 0.99, count) ?? NaN;
    c.waiting[i] = service.pendingRequests;
    c.busy[i] = pool?.busy ?? NaN;
    c.idempotencyKeys[i] = service.idempotencyKeys;

    // The finished interval's counts join the window; the oldest interval's array is reused.
    const ring = this.#latencyRing;
    const slot = seq % ring.length;
    this.#latency = ring[slot]!.fill(0);
    ring[slot] = latency;
  }

  snapshot(since?: number): StatsSnapshot {
    const service = this.#sources.service();
    const pool = this.#sources.pool?.();
    const last = this.#lastSeq;
    const first = Math.max(since === undefined ? 1 : since + 1, last - this.#capacity + 1, 1);
    const series = { firstSeq: first, lastSeq: last, t: [] as number[] } as StatsSnapshot['series'];
    for (const name of SERIES_NAMES) series[name] = [];
    for (let seq = first; seq <= last; seq++) {
      const i = seq % this.#capacity;
      series.t.push(this.#t[i]!);
      for (const name of SERIES_NAMES) {
        const v = this.#columns[name][i]!;
        series[name].push(Number.isNaN(v) ? null : v);
      }
    }
    return {
      startedAt: this.startedAt,
      now: this.#now(),
      intervalMs: SAMPLE_INTERVAL_MS,
      pool: pool
        ? {
            size: pool.size,
            idle: pool.idle,
            busy: pool.busy,
            replacing: pool.replacing,
            waiting: pool.waiting,
            maxWaiting: pool.maxWaiting,
            closed: pool.closed,
            // Chosen fields only: a slot's lastError is free text (it may name a topic).
            slots: pool.slots.map((s) => ({
              slot: s.slot,
              transactionalId: s.transactionalId,
              state: s.state,
              stateSince: s.stateSince,
              transactions: s.transactions,
              replacements: s.replacements,
            })),
          }
        : null,
      service: { pendingRequests: service.pendingRequests, openBatches: service.openBatches, idempotencyKeys: service.idempotencyKeys },
      totals: {
        committed: pool?.counters.committed ?? 0,
        aborted: pool?.counters.aborted ?? 0,
        outcomeUnknown: pool?.counters.outcomeUnknown ?? 0,
        retries: pool?.counters.retries ?? 0,
        replacements: pool?.counters.replacements ?? 0,
        rejected: pool?.counters.rejected ?? 0,
        transactions: service.transactions,
        requests: service.requests,
        batchedRequests: service.batchedRequests,
        httpRequests: this.#httpRequests,
        httpErrors: this.#httpErrors,
      },
      latency: this.#windowLatency(),
      series,
      errors: [...this.#errors.values()]
        .reverse()
        .slice(0, this.#maxErrorCodes)
        .map((e) => ({ ...e })),
    };
  }

  /** Percentiles over the latency window, merged once per interval however many ask. */
  #windowLatency(): StatsSnapshot['latency'] {
    const seq = this.#lastSeq;
    if (this.#latencyMerged?.seq !== seq) {
      const merged = newLatencyCounts();
      for (const counts of this.#latencyRing) for (let i = 0; i < counts.length; i++) merged[i]! += counts[i]!;
      const count = sum(merged);
      this.#latencyMerged = { seq, count, p50Ms: quantileMs(merged, 0.5, count), p99Ms: quantileMs(merged, 0.99, count) };
    }
    const { count, p50Ms, p99Ms } = this.#latencyMerged;
    return { windowSeconds: (this.#latencyRing.length * SAMPLE_INTERVAL_MS) / 1000, count, p50Ms, p99Ms };
  }
}
