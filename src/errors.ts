/**
 * Every error txgate throws is a TxGateError with a stable `code`, so callers branch on codes,
 * never on messages (the way Fastify's errors work). Transaction errors also say what became of
 * the transaction: `aborted` (nothing is visible) or `unknown` (the commit may or may not have
 * happened; only a re-read, or a retry with an idempotency key, tells).
 *
 * The codes, and what the HTTP gateway answers for each, are listed once in error-catalogue.ts;
 * TxGateError takes no code that is not there.
 */
import type { ErrorCode } from './error-catalogue.js';

export type { ErrorCode } from './error-catalogue.js';

export type TransactionOutcome = 'committed' | 'aborted' | 'unknown';

export class TxGateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The wait queue is full: refused at once so that load is shed instead of piling up. */
export class PoolSaturatedError extends TxGateError {
  constructor(readonly waiting: number, readonly maxWaiting: number) {
    super('TXGATE_POOL_SATURATED', `all producers are busy and ${waiting} callers already wait (max ${maxWaiting})`);
  }
}

/** No producer became free within the caller's acquire timeout. Nothing was sent. */
export class AcquireTimeoutError extends TxGateError {
  constructor(readonly timeoutMs: number) {
    super('TXGATE_ACQUIRE_TIMEOUT', `no producer became free within ${timeoutMs} ms`);
  }
}

/** The caller's AbortSignal fired while it waited for a producer. Nothing was sent. */
export class AcquireAbortedError extends TxGateError {
  constructor(reason?: unknown) {
    super('TXGATE_ACQUIRE_ABORTED', 'the caller gave up waiting for a producer', { cause: reason });
  }
}

/** The pool is closing or closed, or was never started. Nothing was sent. */
export class PoolClosedError extends TxGateError {
  constructor(message = 'the pool is closed') {
    super('TXGATE_POOL_CLOSED', message);
  }
}

/** The pool could not start (for example, no producer could initialise transactions). */
export class PoolStartError extends TxGateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TXGATE_POOL_START_FAILED', message, options);
  }
}

/** A transactional error; `outcome` says whether anything may have become visible. */
export class TransactionError extends TxGateError {
  readonly outcome: Exclude<TransactionOutcome, 'committed'>;
  readonly transactionalId: string | undefined;
  constructor(
    code: ErrorCode,
    outcome: Exclude<TransactionOutcome, 'committed'>,
    message: string,
    options?: { cause?: unknown; transactionalId?: string | undefined },
  ) {
    super(code, message, options);
    this.outcome = outcome;
    this.transactionalId = options?.transactionalId;
  }
}

/** The transaction was aborted: none of its records, and no offsets, are visible to read_committed readers. */
export class TransactionAbortedError extends TransactionError {
  constructor(message: string, options?: { cause?: unknown; transactionalId?: string | undefined }) {
    super('TXGATE_TRANSACTION_ABORTED', 'aborted', message, options);
  }
}

/**
 * The commit's result is not known: the broker may have committed it. Retrying the same
 * records blindly can duplicate them; retry with an idempotency key or re-read instead.
 */
export class TransactionOutcomeUnknownError extends TransactionError {
  constructor(message: string, options?: { cause?: unknown; transactionalId?: string | undefined }) {
    super('TXGATE_TRANSACTION_OUTCOME_UNKNOWN', 'unknown', message, options);
  }
}

/** The `tx` handle was used after its transaction ended, or concurrently with its own end. */
export class TransactionClosedError extends TxGateError {
  constructor() {
    super('TXGATE_TRANSACTION_CLOSED', 'this transaction has already ended; use the tx handle only inside its callback');
  }
}

export class ConfigurationError extends TxGateError {
  constructor(message: string) {
    super('TXGATE_CONFIGURATION', message);
  }
}

// ---- Errors of the gateway's transaction service (their HTTP problems: error-catalogue.ts)


/** This instance is still working on a request with the same idempotency key (HTTP 409). */
export class IdempotencyKeyInFlightError extends TxGateError {
  constructor(readonly key: string) {
    super('TXGATE_IDEMPOTENCY_IN_FLIGHT', 'a request with this idempotency key is still being processed; retry later with the same key to get its outcome');
  }
}

/** The key was first used with a different request body (HTTP 422). */
export class IdempotencyKeyMismatchError extends TxGateError {
  constructor(readonly key: string) {
    super('TXGATE_IDEMPOTENCY_MISMATCH', 'this idempotency key was already used with a different request body; use a new key for a different request');
  }
}

/**
 * The local view of the idempotency topic could not be brought up to date in time (the broker
 * is unreachable, or another transaction on the key's partition stays open), so it is unknown
 * whether the key was already used. Nothing was written (HTTP 503 + Retry-After).
 */
export class IdempotencyUnavailableError extends TxGateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TXGATE_IDEMPOTENCY_UNAVAILABLE', message, options);
  }
}

/**
 * Kafka refused one of this request's records (for example MSG_SIZE_TOO_LARGE). None of this
 * request's records is visible; requests that shared its transaction were committed without it.
 */
export class RecordRejectedError extends TxGateError {
  constructor(
    readonly recordIndex: number,
    readonly kafkaCode: number,
    readonly kafkaCodeName: string | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('TXGATE_RECORD_REJECTED', `Kafka refused record ${recordIndex}: ${detail}`, options);
  }
}

/**
 * No Kafka broker answered the gateway's last metadata request, so a new transaction is refused
 * before it waits for anything. Nothing was written (HTTP 503 + Retry-After).
 */
export class KafkaUnavailableError extends TxGateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TXGATE_KAFKA_UNAVAILABLE', message, options);
  }
}
