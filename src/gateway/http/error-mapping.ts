/**
 * The errors TransactionService.submit() may throw, mapped
 * to problems. Matching is by the stable `code`, never by class or message, so this module does
 * not depend on where each error class lives.
 */
import { HttpProblem } from './problems.js';
import { TopicMetadataError } from '../service/topic-catalog.js';

/** Seconds a client should wait before retrying a request refused for load. */
export const RETRY_AFTER_SATURATED_S = 1;
export const RETRY_AFTER_SHUTTING_DOWN_S = 5;
export const RETRY_AFTER_KAFKA_UNAVAILABLE_S = 2;

const MSG_SIZE_TOO_LARGE = 10;
const RECORD_LIST_TOO_LARGE = 18;

interface CodedError {
  code?: unknown;
  message?: unknown;
  recordIndex?: unknown;
  kafkaCode?: unknown;
  kafkaCodeName?: unknown;
}

export interface MappingContext {
  /** Whether the request carried an Idempotency-Key (decides what a 504 tells the client to do). */
  hadIdempotencyKey: boolean;
}

function retryAfter(seconds: number): Record<string, string> {
  return { 'retry-after': String(seconds) };
}

function kafkaUnavailable(message: string, cause: unknown): HttpProblem {
  return new HttpProblem('TXGATE_KAFKA_UNAVAILABLE', `${message}; nothing was written, retry after the Retry-After delay`, {
    headers: retryAfter(RETRY_AFTER_KAFKA_UNAVAILABLE_S),
    cause,
  });
}

export function problemFromServiceError(error: unknown, ctx: MappingContext): HttpProblem {
  if (error instanceof HttpProblem) return error;
  if (error instanceof TopicMetadataError) {
    return new HttpProblem('TXGATE_KAFKA_UNAVAILABLE', `could not look up the topics in Kafka (${error.message}); retry shortly`, {
      headers: retryAfter(RETRY_AFTER_KAFKA_UNAVAILABLE_S),
      cause: error,
    });
  }
  const e = (typeof error === 'object' && error !== null ? error : {}) as CodedError;
  const message = typeof e.message === 'string' ? e.message : String(error);
  switch (e.code) {
    case 'TXGATE_IDEMPOTENCY_IN_FLIGHT':
      return new HttpProblem('TXGATE_IDEMPOTENCY_IN_FLIGHT', 'a request with this Idempotency-Key is still being processed; retry after it has finished to get its outcome', {
        headers: retryAfter(RETRY_AFTER_SATURATED_S),
        cause: error,
      });
    case 'TXGATE_IDEMPOTENCY_MISMATCH':
      return new HttpProblem('TXGATE_IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was already used for a request with a different body; use a new key for a new request', { cause: error });
    case 'TXGATE_RECORD_REJECTED': {
      const recordIndex = typeof e.recordIndex === 'number' ? e.recordIndex : undefined;
      const kafkaCode = typeof e.kafkaCode === 'number' ? e.kafkaCode : undefined;
      const kafkaCodeName = typeof e.kafkaCodeName === 'string' ? e.kafkaCodeName : undefined;
      const pointer = recordIndex === undefined ? '/records' : `/records/${recordIndex}`;
      const extensions: Record<string, unknown> = { kafkaCode, kafkaCodeName };
      const tooLarge = kafkaCode === MSG_SIZE_TOO_LARGE || kafkaCode === RECORD_LIST_TOO_LARGE || kafkaCodeName === 'MSG_SIZE_TOO_LARGE';
      const what = kafkaCodeName ?? (kafkaCode !== undefined ? `Kafka error ${kafkaCode}` : 'refused');
      if (tooLarge) {
        extensions['errors'] = [{ pointer, detail: `${what}: larger than the topic or broker allows (max.message.bytes)` }];
        return new HttpProblem('TXGATE_RECORD_TOO_LARGE', `Kafka refused record ${pointer} as too large (${what}); nothing of this request was written. Make it smaller, or raise the topic's max.message.bytes`, { extensions, cause: error });
      }
      extensions['errors'] = [{ pointer, detail: what }];
      return new HttpProblem('TXGATE_RECORD_REJECTED', `${message} (record ${pointer}); nothing of this request was written; fix the record before retrying`, { extensions, cause: error });
    }
    case 'TXGATE_IDEMPOTENCY_UNAVAILABLE':
      return new HttpProblem('TXGATE_IDEMPOTENCY_UNAVAILABLE', `the gateway could not confirm this Idempotency-Key's history in time (${message}); nothing was written, retry shortly`, {
        headers: retryAfter(RETRY_AFTER_SATURATED_S),
        cause: error,
      });
    case 'TXGATE_POOL_SATURATED':
      return new HttpProblem('TXGATE_POOL_SATURATED', 'every Kafka producer is busy and the wait queue is full; nothing was written, retry after the Retry-After delay', {
        headers: retryAfter(RETRY_AFTER_SATURATED_S),
        cause: error,
      });
    case 'TXGATE_ACQUIRE_TIMEOUT':
      return new HttpProblem('TXGATE_ACQUIRE_TIMEOUT', `${message}; nothing was written, retry after the Retry-After delay`, {
        headers: retryAfter(RETRY_AFTER_SATURATED_S),
        cause: error,
      });
    case 'TXGATE_KAFKA_UNAVAILABLE':
      return kafkaUnavailable(message, error);
    case 'TXGATE_ACQUIRE_ABORTED': {
      // The wait was cut short by Kafka becoming unreachable (see kafka-reachability.ts), not by the client.
      const reason = (error as { cause?: CodedError }).cause;
      if (reason?.code === 'TXGATE_KAFKA_UNAVAILABLE') return kafkaUnavailable(String(reason.message), error);
      return new HttpProblem('TXGATE_CLIENT_CLOSED_REQUEST', 'the client disconnected before a producer was free; nothing was written', { cause: error });
    }
    case 'TXGATE_POOL_CLOSED':
      return new HttpProblem('TXGATE_SHUTTING_DOWN', 'the gateway is shutting down; nothing was written, retry against another instance or after the Retry-After delay', {
        headers: { ...retryAfter(RETRY_AFTER_SHUTTING_DOWN_S), connection: 'close' },
        cause: error,
      });
    case 'TXGATE_TRANSACTION_ABORTED':
      return new HttpProblem('TXGATE_TRANSACTION_ABORTED', `the Kafka transaction was aborted (${message}); none of this request's records were written, so it is safe to retry`, { cause: error });
    case 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN':
      return new HttpProblem(
        'TXGATE_TRANSACTION_OUTCOME_UNKNOWN',
        ctx.hadIdempotencyKey
          ? `the commit's outcome is unknown (${message}): the records may or may not have been written; retry with the same Idempotency-Key and body to learn the outcome, the records are written at most once`
          : `the commit's outcome is unknown (${message}): the records may or may not have been written, and without an Idempotency-Key a retry may write them twice; check the topics before retrying, and send an Idempotency-Key next time`,
        { cause: error },
      );
  }
  return new HttpProblem('TXGATE_INTERNAL', 'an unexpected error occurred; whether the records were written is not known, retry with the same Idempotency-Key to find out', { cause: error });
}
