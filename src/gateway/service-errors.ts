/**
 * Errors the TransactionService adds to src/errors.ts. Each has a stable `code` the HTTP layer
 * maps to a status: callers branch on codes, never messages.
 */
import { TxGateError } from '../errors.js';

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
