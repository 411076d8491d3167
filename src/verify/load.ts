/**
 * The load driver: `concurrency` clients, each sending checkable requests one after another and
 * retrying each until a definitive answer, over one or several gateways. Records what was sent
 * and answered (for the checker) and how the service behaved (for the report).
 */
import { DEFAULT_RETRY_POLICY, answerLabel, sendUntilDefinitive, type AttemptAnswer, type LaneResult, type RetryPolicy } from './http-client.js';
import { assertKeyPart, buildRecords, idempotencyKey, newRunId, requestBody } from './payload.js';
import type { SentRequest } from './types.js';

/**
 * How requests meet gateways:
 * - `round-robin`: request n goes to gateway n mod G, with every retry;
 * - `spray`: each attempt goes to the next gateway (a client behind a load balancer);
 * - `race`: each request goes to every gateway at the same moment, each side retrying on its
 *   own (a client whose retry reached another instance while the first attempt still runs).
 */
export type GatewayMode = 'round-robin' | 'spray' | 'race';

export interface LoadOptions {
  /** Gateway base URLs, e.g. http://127.0.0.1:8080. */
  gateways: string[];
  mode?: GatewayMode | undefined;
  topics: string[];
  /** Stop after this many requests; default 1000 when durationMs is not set either. */
  requests?: number | undefined;
  /** Stop starting requests after this long. With `requests` too, whichever comes first. */
  durationMs?: number | undefined;
  /** Clients sending at once (default 32). */
  concurrency?: number | undefined;
  recordsPerRequest?: number | undefined;
  /** Approximate size of each record value (default 100 bytes). */
  valueBytes?: number | undefined;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string | undefined;
  /** One HTTP attempt (default 10 s). */
  attemptTimeoutMs?: number | undefined;
  /** A request without a definitive answer this long after its first attempt is undecided (default 120 s). */
  giveUpMs?: number | undefined;
  retryPolicy?: Partial<RetryPolicy> | undefined;
  /** Starts every Idempotency-Key and record key (default `verify-`). */
  keyPrefix?: string | undefined;
  /** Default: a new unique one. */
  runId?: string | undefined;
  /** Ends the load early: no new requests, retries stop (unfinished requests are undecided). */
  signal?: AbortSignal | undefined;
  /** Called about every progressIntervalMs while the load runs. */
  onProgress?: ((p: LoadProgress) => void) | undefined;
  progressIntervalMs?: number | undefined;
}

export interface LoadProgress {
  elapsedMs: number;
  started: number;
  finished: number;
  acknowledged: number;
  inFlight: number;
}

export interface LoadStats {
  durationMs: number;
  /** Every attempt's answer, by HTTP status (or `connection-error`, `timeout`). */
  answers: Record<string, number>;
  /** Problem `code`s seen, with their status: "503 TXGATE_POOL_SATURATED". */
  problemCodes: Record<string, number>;
  attempts: number;
  /** 200s answered with Idempotent-Replayed: true. */
  replayed: number;
  /** The longest time without any 200, from the load's start to its end (ms since the start). */
  longestGapWithoutAck: { ms: number; fromMs: number; toMs: number };
  /** From a request's first attempt to its first 200 (acknowledged requests). */
  latencyMs: { p50: number; p99: number; max: number };
  acknowledgedPerSecond: number;
  perGateway: Record<string, { attempts: number; acknowledged: number }>;
}

export interface LoadResult {
  runId: string;
  keyPrefix: string;
  topics: string[];
  gateways: string[];
  mode: GatewayMode;
  startedAt: string;
  requests: SentRequest[];
  stats: LoadStats;
}

export const LOAD_DEFAULTS = {
  requests: 1000,
  concurrency: 32,
  recordsPerRequest: 1,
  valueBytes: 100,
  attemptTimeoutMs: 10_000,
  giveUpMs: 120_000,
  keyPrefix: 'verify-',
} as const;

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const gateways = opts.gateways;
  if (gateways.length === 0) throw new Error('at least one gateway URL is needed');
  if (opts.topics.length === 0) throw new Error('at least one topic is needed');
  const mode = opts.mode ?? 'round-robin';
  const keyPrefix = opts.keyPrefix ?? LOAD_DEFAULTS.keyPrefix;
  const runId = opts.runId ?? newRunId();
  assertKeyPart('the key prefix', keyPrefix);
  assertKeyPart('the run id', runId);
  const limit = opts.requests ?? (opts.durationMs === undefined ? LOAD_DEFAULTS.requests : Infinity);
  const concurrency = positive('concurrency', opts.concurrency ?? LOAD_DEFAULTS.concurrency);
  const shape = {
    keyPrefix,
    runId,
    topics: opts.topics,
    recordsPerRequest: positive('records per request', opts.recordsPerRequest ?? LOAD_DEFAULTS.recordsPerRequest),
    valueBytes: opts.valueBytes ?? LOAD_DEFAULTS.valueBytes,
  };
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...opts.retryPolicy };
  const attemptTimeoutMs = opts.attemptTimeoutMs ?? LOAD_DEFAULTS.attemptTimeoutMs;
  const giveUpMs = opts.giveUpMs ?? LOAD_DEFAULTS.giveUpMs;

  const startedAt = new Date();
  const start = performance.now();
  const stopAt = opts.durationMs === undefined ? Infinity : start + opts.durationMs;
  const stats = new StatsCollector(start, gateways);
  const requests: SentRequest[] = [];
  let next = 0;
  let finished = 0;

  const progressTimer =
    opts.onProgress &&
    setInterval(() => {
      opts.onProgress!({
        elapsedMs: Math.round(performance.now() - start),
        started: next,
        finished,
        acknowledged: stats.acknowledged,
        inFlight: next - finished,
      });
    }, opts.progressIntervalMs ?? 10_000);
  progressTimer?.unref();

  const client = async (): Promise<void> => {
    for (;;) {
      if (next >= limit || performance.now() >= stopAt || opts.signal?.aborted) return;
      const id = next++;
      const records = buildRecords(shape, id);
      const request: SentRequest = { id, idempotencyKey: idempotencyKey(keyPrefix, runId, id), records, outcomes: [] };
      requests.push(request);
      const body = requestBody(records);
      const sentAt = performance.now();
      const lane = (target: (n: number) => string): Promise<LaneResult> =>
        sendUntilDefinitive({
          idempotencyKey: request.idempotencyKey,
          body,
          target,
          apiKey: opts.apiKey,
          attemptTimeoutMs,
          giveUpMs,
          policy,
          signal: opts.signal,
          onAnswer: (answer, gateway) => stats.answer(answer, gateway, request, sentAt),
        });
      const lanes =
        mode === 'race'
          ? gateways.map((g) => lane(() => g))
          : mode === 'spray'
            ? [lane((n) => gateways[(id + n) % gateways.length]!)]
            : [lane(() => gateways[id % gateways.length]!)];
      request.outcomes = (await Promise.all(lanes)).map((r) => r.outcome);
      finished += 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
  } finally {
    if (progressTimer) clearInterval(progressTimer);
  }
  requests.sort((a, b) => a.id - b.id);
  return { runId, keyPrefix, topics: opts.topics, gateways, mode, startedAt: startedAt.toISOString(), requests, stats: stats.finish() };
}

function positive(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got ${n}`);
  return n;
}

/** Running counts; latencies and gaps come from performance.now(), which never jumps. */
class StatsCollector {
  acknowledged = 0;
  private readonly answers: Record<string, number> = {};
  private readonly problemCodes: Record<string, number> = {};
  private readonly perGateway: Record<string, { attempts: number; acknowledged: number }> = {};
  private readonly latencies: number[] = [];
  /** Requests with a 200 so far: with `race`, only a request's first 200 is its latency. */
  private readonly acked = new WeakSet<SentRequest>();
  private attempts = 0;
  private replayed = 0;
  private lastAck: number;
  private gap = { ms: 0, fromMs: 0, toMs: 0 };

  constructor(
    private readonly start: number,
    gateways: string[],
  ) {
    this.lastAck = start;
    for (const g of gateways) this.perGateway[g] = { attempts: 0, acknowledged: 0 };
  }

  answer(a: AttemptAnswer, gateway: string, request: SentRequest, sentAt: number): void {
    const label = answerLabel(a);
    this.attempts += 1;
    this.answers[label] = (this.answers[label] ?? 0) + 1;
    if (a.code) this.problemCodes[`${label} ${a.code}`] = (this.problemCodes[`${label} ${a.code}`] ?? 0) + 1;
    const g = this.perGateway[gateway];
    if (g) g.attempts += 1;
    if (a.status === 200) {
      if (g) g.acknowledged += 1;
      if (a.replayed) this.replayed += 1;
      const now = performance.now();
      this.ack(now);
      if (!this.acked.has(request)) {
        this.acked.add(request);
        this.acknowledged += 1;
        this.latencies.push(now - sentAt);
      }
    }
  }

  private ack(now: number): void {
    if (now - this.lastAck > this.gap.ms) this.gap = { ms: now - this.lastAck, fromMs: this.lastAck - this.start, toMs: now - this.start };
    this.lastAck = now;
  }

  finish(): LoadStats {
    const end = performance.now();
    // the tail counts too: a run whose last minutes saw no 200 had that long an outage
    if (end - this.lastAck > this.gap.ms) this.gap = { ms: end - this.lastAck, fromMs: this.lastAck - this.start, toMs: end - this.start };
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const durationMs = end - this.start;
    return {
      durationMs: Math.round(durationMs),
      answers: this.answers,
      problemCodes: this.problemCodes,
      attempts: this.attempts,
      replayed: this.replayed,
      longestGapWithoutAck: { ms: Math.round(this.gap.ms), fromMs: Math.round(this.gap.fromMs), toMs: Math.round(this.gap.toMs) },
      latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: Math.round(sorted.at(-1) ?? 0) },
      acknowledgedPerSecond: durationMs > 0 ? Math.round((this.acknowledged * 1000) / durationMs) : 0,
      perGateway: this.perGateway,
    };
  }
}

/** Nearest-rank percentile of sorted values (0 for none), rounded to whole ms. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return Math.round(sorted[rank - 1]!);
}
