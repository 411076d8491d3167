/**
 * A fault scenario's answers binned over time, small enough for the report's JSON and enough for
 * its plots (bench/lib/fault-plots.ts): 200s per second for each load, and the other answers per
 * second by kind. No charting here: bench/faults/scenarios.ts (and the CI test through it) can
 * import this without loading vega.
 */
import type { Attempt } from '../faults/attempts.js';

export interface ScenarioSeries {
  /** Bin width; bin i holds the answers that arrived in [i × binMs, (i + 1) × binMs) from the scenario's start (the timeline's clock). */
  binMs: number;
  /** When the first (main) load started, ms from the scenario's start: RecoveryFigure.atMs counts from there. */
  mainLoadStartMs?: number | undefined;
  /** 200s per bin, by load name (attempts of no listed load under "other loads"). */
  acks: Record<string, number[]>;
  /** Other answers per bin, by the label countByAnswer uses: "503 TXGATE_KAFKA_UNAVAILABLE", "timeout", "connection-error". */
  errors: Record<string, number[]>;
}

/**
 * Bins the attempts by answer time (performance.now() clock, like t0). `loads` name the loads by
 * their key prefix; attempts of none of them (or without a key) count under "other loads".
 */
export function scenarioSeries(
  attempts: readonly Attempt[],
  t0: number,
  loads: ReadonlyArray<{ name: string; keyPrefix: string }>,
  opts: { binMs?: number; mainLoadStartMs?: number | undefined } = {},
): ScenarioSeries {
  const binMs = opts.binMs ?? 1000;
  const bins = attempts.reduce((n, a) => Math.max(n, Math.floor((a.end - t0) / binMs) + 1), 0);
  const acks: Record<string, number[]> = {};
  const errors: Record<string, number[]> = {};
  for (const l of loads) acks[l.name] = new Array<number>(bins).fill(0);
  for (const a of attempts) {
    const bin = Math.floor((a.end - t0) / binMs);
    if (bin < 0) continue;
    if (a.status === 200) {
      const load = loads.find((l) => a.key?.startsWith(l.keyPrefix) === true)?.name ?? 'other loads';
      (acks[load] ??= new Array<number>(bins).fill(0))[bin]! += 1;
    } else {
      const label = a.code ? `${a.status} ${a.code}` : String(a.status);
      (errors[label] ??= new Array<number>(bins).fill(0))[bin]! += 1;
    }
  }
  return { binMs, ...(opts.mainLoadStartMs === undefined ? {} : { mainLoadStartMs: Math.round(opts.mainLoadStartMs) }), acks, errors };
}
