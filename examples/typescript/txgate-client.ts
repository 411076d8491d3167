/**
 * Sends one atomic Kafka transaction through a txgate gateway (POST /v1/transactions), safely:
 * every attempt carries the same Idempotency-Key and the same body; pauses grow exponentially
 * with full jitter and honour Retry-After; a definitive answer or a deadline ends it.
 * Plain fetch, no dependencies (Node.js 22+; any runtime with fetch, AbortSignal.any and crypto.randomUUID).
 */

/** One record, as in the HTTP API. Without `value` (or `valueBase64`) the value is null. */
export interface TxRecord {
  topic: string;
  partition?: number;
  key?: string;
  keyBase64?: string;
  value?: unknown;
  valueBase64?: string;
  headers?: Record<string, string>;
}

/** Where a record was committed. Offsets are decimal strings because Kafka offsets are 64-bit. */
export interface Position {
  topic: string;
  partition: number;
  offset: string;
}

export interface Committed {
  idempotencyKey: string;
  /** In request order. */
  records: Position[];
  attempts: number;
  /** Answered from an earlier attempt's outcome (Idempotent-Replayed: true), e.g. one whose answer was lost. */
  replayed: boolean;
}

/**
 * A definitive refusal (a 4xx other than 408, 409 and 429): nothing of the request was written,
 * and sending it again would be refused again.
 */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    readonly detail: string | undefined,
    /** The problem+json document as received. */
    readonly body: string,
  ) {
    super(`${status} ${code}: ${detail}`);
    this.name = 'ProblemError';
  }
}

/**
 * No definitive answer before the deadline. The transaction may or may not have been written:
 * retrying later with the same key and body (within the gateway's retention window, 24 h by
 * default) learns its outcome without writing it twice.
 */
export class GaveUpError extends Error {
  constructor(
    readonly idempotencyKey: string,
    readonly attempts: number,
    readonly last: string,
  ) {
    super(`gave up after ${attempts} attempts (last: ${last}); the outcome is unknown: retry later with Idempotency-Key ${idempotencyKey} and the same body to learn it`);
    this.name = 'GaveUpError';
  }
}

/** One retry about to happen, for logging. */
export interface RetryInfo {
  idempotencyKey: string;
  /** The attempt that failed, 1-based. */
  attempt: number;
  /** "503 TXGATE_NOT_READY", or the connection error. */
  answer: string;
  retryAfterMs: number;
  delayMs: number;
}

export interface SendOptions {
  /** Sent as `Authorization: Bearer <apiKey>` when the gateway has API keys on. */
  apiKey?: string | undefined;
  /** All attempts and pauses of one transaction (default 2 min). */
  giveUpMs?: number;
  /**
   * One attempt (default 60 s). The gateway may take its retry deadline (30 s) plus its acquire
   * timeout (10 s) before answering 504; an attempt cut short is simply retried with the same key.
   */
  attemptTimeoutMs?: number;
  /** Doubles per retry up to maxBackoffMs (defaults 100 ms and 3 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  onRetry?: (retry: RetryInfo) => void;
  /** Stops waiting and retrying (the outcome of an attempt in flight is then unknown). */
  signal?: AbortSignal;
}

interface Answer {
  /** Undefined: no HTTP answer (connection error, timeout). */
  status?: number;
  code?: string;
  detail?: string;
  body: string;
  retryAfterMs: number;
  replayed: boolean;
  error?: string;
}

/**
 * 408 (the request did not arrive in time), 409 (this key's first attempt is still running), 429
 * (a proxy's rate limit) and every 5xx either wrote nothing or left the outcome open (504, 500
 * TXGATE_INTERNAL); with the same key a retry is safe in both cases. Any other status is
 * definitive: nothing was written, and the same request would be refused again.
 */
export function retryable(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** Commits `records` as one transaction: resolves on 200, rejects with ProblemError or GaveUpError. */
export async function sendTransaction(baseUrl: string, records: TxRecord[], opts: SendOptions = {}): Promise<Committed> {
  // One key and one body per logical transaction, reused on every retry: the gateway ties a key
  // to its first body (a different body under the same key is a 422).
  const idempotencyKey = crypto.randomUUID();
  const body = JSON.stringify({ records });
  const deadline = Date.now() + (opts.giveUpMs ?? 120_000);
  for (let attempt = 1; ; attempt++) {
    const timeoutMs = Math.max(1, Math.min(opts.attemptTimeoutMs ?? 60_000, deadline - Date.now()));
    let answer = await attemptOnce(baseUrl, idempotencyKey, body, timeoutMs, opts);
    if (answer.status === 200) {
      const positions = parsePositions(answer.body);
      if (positions?.length === records.length) return { idempotencyKey, records: positions, attempts: attempt, replayed: answer.replayed };
      // A 200 whose body did not arrive whole: the transaction committed, and a retry with the
      // same key replays its answer.
      answer = { body: '', retryAfterMs: 0, replayed: false, error: 'unreadable 200 body' };
    }
    if (answer.status !== undefined && !retryable(answer.status)) {
      throw new ProblemError(answer.status, answer.code, answer.detail, answer.body);
    }
    opts.signal?.throwIfAborted();
    const delayMs = answer.retryAfterMs + fullJitter(attempt, opts.initialBackoffMs ?? 100, opts.maxBackoffMs ?? 3_000);
    if (Date.now() + delayMs > deadline) throw new GaveUpError(idempotencyKey, attempt, describe(answer));
    opts.onRetry?.({ idempotencyKey, attempt, answer: describe(answer), retryAfterMs: answer.retryAfterMs, delayMs });
    await sleep(delayMs, opts.signal);
  }
}

async function attemptOnce(baseUrl: string, idempotencyKey: string, body: string, timeoutMs: number, opts: SendOptions): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': idempotencyKey };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const timeout = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(`${baseUrl.replace(/\/+$/, '')}/v1/transactions`, {
      method: 'POST',
      headers,
      body,
      signal: opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout,
    });
  } catch (err) {
    opts.signal?.throwIfAborted();
    return { body: '', retryAfterMs: 0, replayed: false, error: describeError(err) };
  }
  let text = '';
  try {
    // Always read the body: an unread body keeps its connection from being reused.
    text = await res.text();
  } catch (err) {
    opts.signal?.throwIfAborted();
    // A non-200 status is known without its problem text; a 200 without its body is not usable.
    if (res.status === 200) return { body: '', retryAfterMs: 0, replayed: false, error: describeError(err) };
  }
  const answer: Answer = {
    status: res.status,
    body: text,
    retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
    replayed: res.headers.get('idempotent-replayed') === 'true',
  };
  if (res.status !== 200) {
    try {
      const problem = JSON.parse(text) as { code?: unknown; detail?: unknown };
      if (typeof problem.code === 'string') answer.code = problem.code;
      if (typeof problem.detail === 'string') answer.detail = problem.detail;
    } catch {
      // not a problem document (e.g. a proxy's error page): the status alone decides
    }
  }
  return answer;
}

function parsePositions(text: string): Position[] | undefined {
  try {
    const records = (JSON.parse(text) as { records?: unknown }).records;
    return Array.isArray(records) ? (records as Position[]) : undefined;
  } catch {
    return undefined;
  }
}

function describe(a: Answer): string {
  if (a.status === undefined) return `connection error: ${a.error}`;
  return a.code ? `${a.status} ${a.code}` : String(a.status);
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'attempt timed out';
  // fetch reports "fetch failed"; its cause says what happened (ECONNREFUSED, ECONNRESET...)
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? err.message;
}

/** Retry-After in ms: delay-seconds or an HTTP date (RFC 9110, 10.2.3); 0 when absent or invalid. */
export function parseRetryAfter(value: string | null): number {
  if (value === null) return 0;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

/**
 * A uniformly random pause in [0, min(max, initial * 2^(attempt-1))]: clients that failed
 * together spread out instead of retrying in lockstep.
 */
function fullJitter(attempt: number, initialMs: number, maxMs: number): number {
  return Math.round(Math.random() * Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30)));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
