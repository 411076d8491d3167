/**
 * The verifier's client: one POST /v1/transactions attempt, and the retry loop a well-behaved
 * client runs around it (same Idempotency-Key and body until a definitive answer). It uses
 * Node's built-in fetch, whose global dispatcher keeps connections alive between attempts.
 */
import type { LaneOutcome, Position } from './types.js';

/** One attempt's answer. `status` is the HTTP status, or what happened instead. */
export interface AttemptAnswer {
  status: number | 'connection-error' | 'timeout';
  /** The problem document's `code`, when there is one. */
  code?: string | undefined;
  /** From a Retry-After header (seconds or an HTTP date). */
  retryAfterMs?: number | undefined;
  positions?: Position[] | undefined;
  replayed?: boolean | undefined;
  /** For a connection error: its message. */
  error?: string | undefined;
}

export type AnswerClass = 'acknowledged' | 'failed' | 'retry';

/**
 * 200: acknowledged. 408, 409 (same key still in flight), 429, any 5xx, connection errors and
 * timeouts: the outcome is open or nothing was written, so retry with the same key. Any other
 * status is definitive: the gateway promises nothing of the request was written.
 */
export function classifyAnswer(a: AttemptAnswer): AnswerClass {
  if (typeof a.status !== 'number') return 'retry';
  if (a.status === 200) return 'acknowledged';
  if (a.status === 408 || a.status === 409 || a.status === 429 || a.status >= 500) return 'retry';
  return 'failed';
}

/** The key `answers` counts under: the status, or `connection-error` / `timeout`. */
export function answerLabel(a: AttemptAnswer): string {
  return String(a.status);
}

export interface AttemptOptions {
  idempotencyKey: string;
  apiKey?: string | undefined;
  timeoutMs: number;
}

export async function attempt(baseUrl: string, body: string, opts: AttemptOptions): Promise<AttemptAnswer> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': opts.idempotencyKey };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${baseUrl.replace(/\/+$/, '')}/v1/transactions`, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    // always read the body: an unread body keeps its connection from going back to the pool
    text = await res.text();
  } catch (err) {
    if (isTimeout(err)) return { status: 'timeout' };
    return { status: 'connection-error', error: describeError(err) };
  }
  const answer: AttemptAnswer = { status: res.status, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (json && typeof json === 'object' && typeof (json as { code?: unknown }).code === 'string') answer.code = (json as { code: string }).code;
  if (res.status === 200) {
    // A 200 whose body lists no positions still counts as an acknowledgement: the checker then
    // reports the records as misplaced, which is what such a gateway bug deserves.
    answer.positions = parsePositions(json);
    answer.replayed = res.headers.get('idempotent-replayed') === 'true';
  }
  return answer;
}

function parsePositions(json: unknown): Position[] {
  const records = (json as { records?: unknown } | undefined)?.records;
  if (!Array.isArray(records)) return [];
  return records.map((r: { topic?: unknown; partition?: unknown; offset?: unknown }) => ({
    topic: String(r?.topic),
    partition: Number(r?.partition),
    offset: String(r?.offset),
  }));
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch wraps the socket error ("fetch failed"); the cause says what happened (ECONNREFUSED...)
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? err.message;
}

/** Retry-After as milliseconds: delay-seconds or an HTTP date (RFC 9110); undefined if absent or unparsable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export interface RetryPolicy {
  /** The first pause without a Retry-After; doubles per retry up to maxBackoffMs. */
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** Retry-After is honoured up to this: a verifier must keep pressing to measure anything. */
  retryAfterCapMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseBackoffMs: 25, maxBackoffMs: 1000, retryAfterCapMs: 2000 };

/** The pause before retry number `retry` (1-based), jittered so retrying clients spread out. */
export function retryDelayMs(answer: AttemptAnswer, retry: number, policy: RetryPolicy, random = Math.random): number {
  if (answer.retryAfterMs !== undefined) return Math.min(answer.retryAfterMs, policy.retryAfterCapMs);
  const ceiling = Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** Math.min(retry - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export interface LaneOptions {
  idempotencyKey: string;
  body: string;
  /** The gateway for attempt number `n` (0-based). */
  target: (n: number) => string;
  apiKey?: string | undefined;
  attemptTimeoutMs: number;
  /** After this long without a definitive answer, the lane gives up: the request is undecided. */
  giveUpMs: number;
  policy: RetryPolicy;
  /** Called with every attempt's answer, when it arrives. */
  onAnswer?: ((answer: AttemptAnswer, gateway: string) => void) | undefined;
  /** Stops retrying early (the run is being interrupted): the lane ends undecided. */
  signal?: AbortSignal | undefined;
}

export interface LaneResult {
  outcome: LaneOutcome;
  attempts: number;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** Sends the request until a definitive answer or the give-up deadline. */
export async function sendUntilDefinitive(opts: LaneOptions): Promise<LaneResult> {
  const deadline = Date.now() + opts.giveUpMs;
  let last = 'not sent';
  for (let n = 0; ; n++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0 || opts.signal?.aborted) return { outcome: { kind: 'undecided', last }, attempts: n };
    const gateway = opts.target(n);
    const answer = await attempt(gateway, opts.body, {
      idempotencyKey: opts.idempotencyKey,
      apiKey: opts.apiKey,
      timeoutMs: Math.min(opts.attemptTimeoutMs, remaining),
    });
    opts.onAnswer?.(answer, gateway);
    const cls = classifyAnswer(answer);
    if (cls === 'acknowledged') {
      return { outcome: { kind: 'acknowledged', positions: answer.positions ?? [], replayed: answer.replayed === true }, attempts: n + 1 };
    }
    if (cls === 'failed') return { outcome: { kind: 'failed', status: answer.status as number, code: answer.code }, attempts: n + 1 };
    last = `${answerLabel(answer)}${answer.code ? ` ${answer.code}` : ''}`;
    const pause = retryDelayMs(answer, n + 1, opts.policy);
    if (Date.now() + pause >= deadline) return { outcome: { kind: 'undecided', last }, attempts: n + 1 };
    await sleep(pause, opts.signal);
  }
}
