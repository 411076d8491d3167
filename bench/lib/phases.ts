/**
 * The phases of one measured point, shared by the HTTP and library load generators so that every
 * mode gets the same rule: a warm-up of at least `warmup` seconds and until every caller has had
 * an answer (its server-side state exists), at most `warmupMax`; then the measured window; then
 * the drain. The generators read `phase` to decide what to count.
 */
import { percentile, sleep } from './stats.js';
import type { RunResult } from './work.js';

export type Phase = 'warmup' | 'window' | 'drain';

/** A connection or caller, as the generators track it. */
export interface Caller {
  /** When its request in flight was sent; undefined while it has none. */
  sentAt?: number | undefined;
  answered: boolean;
  answeredInWindow: boolean;
}

export interface Window {
  warmupSeconds: number;
  /** Callers still without an answer when the warm-up hit its cap. */
  coldAtWindow: number;
  windowStart: number;
  windowEnd: number;
  /** Requests in flight when the window closed, and the age of the oldest. */
  unfinished: number;
  unfinishedOldestMs: number;
  /** Callers without a single answer within the window. */
  silent: number;
}

export class LoadPhases {
  phase: Phase;

  constructor(
    private readonly warmup: number,
    private readonly warmupMax: number,
  ) {
    this.phase = warmupMax > 0 ? 'warmup' : 'window';
  }

  /** Runs the warm-up and the window over `callers`; the phase is 'drain' when it resolves. */
  async measure(callers: readonly Caller[], windowSeconds: number): Promise<Window> {
    const begun = performance.now();
    const elapsed = () => (performance.now() - begun) / 1000;
    while (this.phase === 'warmup') {
      await sleep(100);
      if (elapsed() >= this.warmupMax || (elapsed() >= this.warmup && callers.every((c) => c.answered))) this.phase = 'window';
    }
    const warmupSeconds = elapsed();
    const coldAtWindow = callers.filter((c) => !c.answered).length;
    const windowStart = performance.now();
    await sleep(windowSeconds * 1000);
    const windowEnd = performance.now();
    this.phase = 'drain';
    const inFlight = callers.filter((c) => c.sentAt !== undefined);
    const unfinishedOldestMs = inFlight.length === 0 ? 0 : Math.max(...inFlight.map((c) => windowEnd - c.sentAt!));
    const silent = callers.filter((c) => !c.answeredInWindow).length;
    return { warmupSeconds, coldAtWindow, windowStart, windowEnd, unfinished: inFlight.length, unfinishedOldestMs, silent };
  }
}

/** A generator's RunResult: the window's bookkeeping, the window's latencies (sorted here), and its own counts. */
export function runResult(
  w: Window,
  latencies: number[],
  counts: Pick<RunResult, 'ok' | 'errors' | 'sent' | 'neverAnswered' | 'warmupAnswers'>,
): RunResult {
  latencies.sort((a, b) => a - b);
  return {
    seconds: (w.windowEnd - w.windowStart) / 1000,
    window: { startMs: performance.timeOrigin + w.windowStart, endMs: performance.timeOrigin + w.windowEnd },
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    unfinished: w.unfinished,
    unfinishedOldestMs: w.unfinishedOldestMs,
    silent: w.silent,
    warmupSeconds: w.warmupSeconds,
    coldAtWindow: w.coldAtWindow,
    ...counts,
  };
}
