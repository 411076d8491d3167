/**
 * Every POST /v1/transactions attempt the verifier makes, with when it started and ended and
 * what it got, recorded by wrapping the global fetch (the verifier's client uses Node's fetch).
 * runLoad reports totals only; the scenarios need a timeline: the acknowledgements around a
 * fault (how long until the service recovers), and the answer times during a cluster freeze.
 *
 * The pure functions below turn a timeline into those figures; test/unit/faults-timeline.test.ts
 * checks them on constructed timelines.
 */

export type AttemptStatus = number | 'timeout' | 'connection-error';

export interface Attempt {
  /** performance.now() at the call and at the answer's headers (or the failure). */
  start: number;
  end: number;
  gateway: string;
  status: AttemptStatus;
  /** The problem document's code, for answers other than 200. */
  code?: string | undefined;
  /** The request's Idempotency-Key (it starts with the load's key prefix). */
  key?: string | undefined;
}

const TRANSACTIONS_PATH = '/v1/transactions';

export class AttemptRecorder {
  readonly attempts: Attempt[] = [];
  /** End times of the 200s, in order. */
  readonly acks: number[] = [];
  private inFlightCount = 0;
  private original: typeof fetch | undefined;

  /** Attempts started and not answered yet. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  install(): void {
    if (this.original) return;
    const original = globalThis.fetch;
    this.original = original;
    const self = this;
    globalThis.fetch = async function recordedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const path = new URL(url).pathname;
      if (!path.endsWith(TRANSACTIONS_PATH)) return original(input, init);
      const gateway = url.slice(0, url.length - TRANSACTIONS_PATH.length).replace(/\/+$/, '');
      const key = new Headers(init?.headers).get('idempotency-key') ?? undefined;
      const start = performance.now();
      self.inFlightCount += 1;
      try {
        const res = await original(input, init);
        const end = performance.now();
        let code: string | undefined;
        if (res.status !== 200) {
          try {
            const doc = JSON.parse(await res.clone().text()) as { code?: unknown };
            if (typeof doc.code === 'string') code = doc.code;
          } catch {
            // not a problem document
          }
        }
        self.record({ start, end, gateway, status: res.status, code, key });
        return res;
      } catch (err) {
        const name = err instanceof Error ? err.name : '';
        self.record({ start, end: performance.now(), gateway, status: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'connection-error', key });
        throw err;
      } finally {
        self.inFlightCount -= 1;
      }
    };
  }

  uninstall(): void {
    if (this.original) globalThis.fetch = this.original;
    this.original = undefined;
  }

  private record(a: Attempt): void {
    this.attempts.push(a);
    if (a.status === 200) this.acks.push(a.end);
  }

  /** End times of the 200s of the attempts `which` selects (all without it), sorted. */
  acksOf(which?: (a: Attempt) => boolean): number[] {
    if (!which) return this.acks;
    return this.attempts.filter((a) => a.status === 200 && which(a)).map((a) => a.end).sort((x, y) => x - y);
  }

  /** 200s with end time in [from, to). */
  acksBetween(from: number, to: number = Infinity, which?: (a: Attempt) => boolean): number {
    return countBetween(this.acksOf(which), from, to);
  }
}

/** How many of the sorted times lie in [from, to). */
export function countBetween(sorted: number[], from: number, to: number): number {
  return lowerBound(sorted, to) - lowerBound(sorted, from);
}

function lowerBound(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Acknowledgements per second over [from, to). */
export function ratePerSecond(acks: number[], from: number, to: number): number {
  return to > from ? (countBetween(acks, from, to) * 1000) / (to - from) : 0;
}

export interface RecoveryRule {
  /** Recovered: the rate in every window of this length is at least `fraction` of the baseline... */
  windowMs: number;
  fraction: number;
  /** ...for this long. */
  holdMs: number;
  /** Candidate times are tried at this step. */
  stepMs: number;
}

export const RECOVERY_RULE: RecoveryRule = { windowMs: 1_000, fraction: 0.5, holdMs: 3_000, stepMs: 100 };

/**
 * The earliest time t >= from at which the service is back: the window of `windowMs` centred on
 * every instant in [t, t + holdMs] holds at least fraction × baseline acknowledgements per
 * second. (Centred windows put a step change of the rate where it happened.) Only windows that
 * end by `now` count, so a live caller gets undefined until it knows. A fault that never pushed
 * the rate below the threshold recovers at `from` (0 ms).
 */
export function recoveredAt(acks: number[], from: number, now: number, baselinePerSecond: number, rule: RecoveryRule = RECOVERY_RULE): number | undefined {
  const half = rule.windowMs / 2;
  const need = (baselinePerSecond * rule.fraction * rule.windowMs) / 1000;
  const windowOk = (centre: number): boolean => countBetween(acks, centre - half, centre + half) >= need;
  for (let t = from; t + rule.holdMs + half <= now; t += rule.stepMs) {
    let ok = true;
    for (let c = t; c <= t + rule.holdMs; c += rule.stepMs) {
      if (!windowOk(c)) {
        ok = false;
        // every candidate up to the failing centre holds that window: go on after it
        t = c;
        break;
      }
    }
    if (ok) return t;
  }
  return undefined;
}

/** The longest stretch without a 200 within [from, to]: { ms, from, to } (absolute times). */
export function longestGap(acks: number[], from: number, to: number): { ms: number; from: number; to: number } {
  let last = from;
  let best = { ms: 0, from, to: from };
  for (let i = lowerBound(acks, from); i < acks.length && acks[i]! <= to; i++) {
    const at = acks[i]!;
    if (at - last > best.ms) best = { ms: at - last, from: last, to: at };
    last = at;
  }
  if (to - last > best.ms) best = { ms: to - last, from: last, to };
  return best;
}

/** The first 200 at or after `from`, if any. */
export function firstAckAfter(acks: number[], from: number): number | undefined {
  const i = lowerBound(acks, from);
  return i < acks.length ? acks[i] : undefined;
}

/** Nearest-rank percentile of unsorted values, rounded (0 for none). */
export function pct(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return Math.round(sorted[rank - 1]!);
}

/** Attempts counted by "status code" label, e.g. "503 TXGATE_KAFKA_UNAVAILABLE", "timeout". */
export function countByAnswer(attempts: Attempt[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of attempts) {
    const label = a.code ? `${a.status} ${a.code}` : String(a.status);
    out[label] = (out[label] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(out).sort(([, x], [, y]) => y - x));
}
