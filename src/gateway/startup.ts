/**
 * Start-up steps that depend on the cluster (producers initialising, the idempotency topic being
 * created, its metadata spreading to every broker, its keys loading) are retried until one
 * deadline for the whole start-up, because a cluster that has just come up, or a topic created a
 * moment ago, answers with errors that go away by themselves (unknown topic, no leader, not
 * leader, timeouts, "Local: No such entry" from a client whose metadata is stale). Meanwhile the
 * gateway's readiness says which step it is at and what failed last (StartupTracker).
 */
import { PoolClosedError, TxGateError } from '../errors.js';

/** A step failing for longer than this is logged, once; shorter hiccups are normal on a new topic. */
export const START_WARN_AFTER_MS = 5_000;

export interface StartupLogger {
  warn(obj: object, msg?: string): void;
}

/** What a step reports as it goes (the gateway shows it on /readyz). */
export interface StartupProgress {
  /** A step begins. */
  step(name: string): void;
  /** An attempt of the step failed and will be retried. */
  attemptFailed(name: string, error: unknown, attempts: number): void;
}

/** Passed down to every start-up step. */
export interface StartContext {
  /** When start-up gives up (epoch milliseconds). */
  deadline: number;
  /** Aborted when the gateway is closed while starting: steps stop retrying. */
  signal?: AbortSignal | undefined;
  progress?: StartupProgress | undefined;
  logger?: StartupLogger | undefined;
}

/** Start-up failed: a step kept failing until the deadline, or failed in a way retrying cannot fix. */
export class GatewayStartError extends TxGateError {
  constructor(
    readonly step: string,
    readonly attempts: number,
    readonly lastError: unknown,
    readonly gaveUp: boolean,
    message: string,
  ) {
    super('TXGATE_START_FAILED', message, { cause: lastError });
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') return (err as { message: string }).message;
  return String(err);
}

/**
 * Kafka codes no retry fixes: the configuration or the credentials are wrong. Anything else may
 * be the cluster settling, so it is retried until the deadline.
 */
const PERMANENT_KAFKA_CODES = new Set<number>([
  17, // INVALID_TOPIC_EXCEPTION
  29, // TOPIC_AUTHORIZATION_FAILED
  30, // GROUP_AUTHORIZATION_FAILED
  31, // CLUSTER_AUTHORIZATION_FAILED
  40, // INVALID_CONFIG
  44, // POLICY_VIOLATION (a topic creation policy refuses the idempotency topic)
  50, // INVALID_TRANSACTION_TIMEOUT (transaction.timeout.ms above the broker's maximum)
  53, // TRANSACTIONAL_ID_AUTHORIZATION_FAILED
  58, // SASL_AUTHENTICATION_FAILED
  -169, // _AUTHENTICATION
  -186, // _INVALID_ARG
]);

/** True for errors no retry can fix (walks the cause chain: the pool wraps the producer's error). */
export function isPermanentStartError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (e instanceof TxGateError && e.code === 'TXGATE_CONFIGURATION') return true;
    // A programming error, not the cluster.
    if (e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number' && PERMANENT_KAFKA_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function closedError(step: string): PoolClosedError {
  return new PoolClosedError(`the gateway was closed while starting (at: ${step})`);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface RetryStepOptions {
  /** Cap on one attempt's timeout (default 10 s), so a stale connection is given up and retried. */
  attemptTimeoutMs?: number;
  /** Default isPermanentStartError. */
  permanent?: (err: unknown) => boolean;
  /** Runs before each retry (e.g. refresh a client's metadata); its errors are ignored. */
  beforeRetry?: (err: unknown) => Promise<void>;
  /** Backoff bounds (default 250 ms doubling to 5 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Runs `attempt` until it succeeds, retrying every failure but a permanent one with a bounded,
 * jittered backoff until ctx.deadline. `attempt` gets the timeout to give its Kafka call. Throws
 * GatewayStartError naming the step and the last error, or PoolClosedError once ctx.signal aborts.
 */
export async function retryStep<T>(ctx: StartContext, step: string, attempt: (timeoutMs: number) => Promise<T>, opts: RetryStepOptions = {}): Promise<T> {
  const began = Date.now();
  const permanent = opts.permanent ?? isPermanentStartError;
  const initial = opts.initialBackoffMs ?? 250;
  const max = opts.maxBackoffMs ?? 5_000;
  ctx.progress?.step(step);
  let warned = false;
  for (let attempts = 1; ; attempts++) {
    if (ctx.signal?.aborted) throw closedError(step);
    const timeoutMs = Math.max(1_000, Math.min(opts.attemptTimeoutMs ?? 10_000, ctx.deadline - Date.now()));
    try {
      return await attempt(timeoutMs);
    } catch (err) {
      if (ctx.signal?.aborted) throw closedError(step);
      // What was closed stays closed.
      if (err instanceof PoolClosedError) throw err;
      if (permanent(err)) {
        throw new GatewayStartError(step, attempts, err, false, `${step} failed: ${describeError(err)} (not retried: retrying cannot fix it)`);
      }
      ctx.progress?.attemptFailed(step, err, attempts);
      const backoff = Math.min(max, initial * 2 ** Math.min(attempts - 1, 20)) * (0.8 + Math.random() * 0.4);
      const now = Date.now();
      if (now + backoff >= ctx.deadline) {
        throw new GatewayStartError(
          step,
          attempts,
          err,
          true,
          `${step} kept failing for ${((now - began) / 1000).toFixed(1)} s (${attempts} attempts) until the start-up deadline; last error: ${describeError(err)}`,
        );
      }
      if (!warned && now - began > START_WARN_AFTER_MS) {
        warned = true;
        ctx.logger?.warn(
          { step, attempts, err: describeError(err), retryingUntil: new Date(ctx.deadline).toISOString() },
          `${step} keeps failing; retrying`,
        );
      }
      await sleep(backoff, ctx.signal);
      if (ctx.signal?.aborted) throw closedError(step);
      await opts.beforeRetry?.(err).catch(() => {});
    }
  }
}

export interface StartupStatus {
  state: 'starting' | 'ready' | 'failed';
  /** When start-up began and when it gives up (ISO 8601). */
  startedAt: string;
  deadline: string;
  /** The step start-up is at (or failed at), and since when. */
  step?: string;
  stepSince?: string;
  /** Failed attempts of this step so far. */
  attempts: number;
  lastError?: string;
  lastErrorAt?: string;
  /** Why start-up failed (state 'failed'). */
  failure?: string;
}

/** Start-up's progress, for readiness and logs. */
export class StartupTracker implements StartupProgress {
  readonly startedAt = Date.now();
  readonly deadline: number;
  private state: StartupStatus['state'] = 'starting';
  private current: { step: string; since: number; attempts: number; lastError?: string; lastErrorAt?: number } | undefined;
  private failure: string | undefined;

  constructor(timeoutMs: number) {
    this.deadline = this.startedAt + timeoutMs;
  }

  get done(): boolean {
    return this.state !== 'starting';
  }

  /** The context to hand to every step. */
  context(signal: AbortSignal, logger?: StartupLogger): StartContext {
    return { deadline: this.deadline, signal, progress: this, logger };
  }

  step(name: string): void {
    this.current = { step: name, since: Date.now(), attempts: 0 };
  }

  attemptFailed(name: string, error: unknown, attempts: number): void {
    if (this.current?.step !== name) this.step(name);
    this.current!.attempts = attempts;
    this.current!.lastError = describeError(error);
    this.current!.lastErrorAt = Date.now();
  }

  ready(): void {
    this.state = 'ready';
  }

  failed(err: unknown): void {
    this.state = 'failed';
    this.failure = describeError(err);
  }

  status(): StartupStatus {
    const iso = (t: number) => new Date(t).toISOString();
    const c = this.current;
    return {
      state: this.state,
      startedAt: iso(this.startedAt),
      deadline: iso(this.deadline),
      ...(c ? { step: c.step, stepSince: iso(c.since) } : {}),
      attempts: c?.attempts ?? 0,
      ...(c?.lastError !== undefined ? { lastError: c.lastError, lastErrorAt: iso(c.lastErrorAt!) } : {}),
      ...(this.failure !== undefined ? { failure: this.failure } : {}),
    };
  }
}
