/**
 * Which problem a failure becomes is decided here: errors of the transaction service and the pool
 * (matched by their stable `code`, never by class or message, so this module does not depend on
 * where each error class lives), the refusals of Fastify and of Node's HTTP parser, and the
 * gateway's own state (draining, starting, not ready), each with the Retry-After it comes with.
 * Status, type and title come from the error catalogue (src/error-catalogue.ts).
 */
// Input refusals (records.ts, auth.ts, idempotency-key.ts, json-body.ts, routes) throw an HttpProblem by catalogue code where found: the code is the whole decision, so a typed error each would only be renamed here.
import type { ConnectionError, FastifyError, FastifyRequest } from 'fastify';
import { MAX_HEADER_BYTES, type GatewayLimits } from '../defaults.js';
import { TopicMetadataError } from '../service/topic-catalog.js';
import { HttpProblem } from './problems.js';
import { describeNotReady, type ReadyReport } from './readiness.js';
import { fieldErrorsFromAjv, summarizeFieldErrors, type AjvErrorLike } from './validation-errors.js';

/** Seconds a client should wait before retrying a request refused for load. */
export const RETRY_AFTER_SATURATED_S = 1;
export const RETRY_AFTER_SHUTTING_DOWN_S = 5;
export const RETRY_AFTER_KAFKA_UNAVAILABLE_S = 2;
/** Seconds a client should wait before retrying a transaction refused because the gateway is still starting. */
export const RETRY_AFTER_STARTING_S = 2;

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

/** Sent with every refusal for shutdown: this instance takes nothing more, so the connection goes too. */
const SHUTTING_DOWN_HEADERS = { ...retryAfter(RETRY_AFTER_SHUTTING_DOWN_S), connection: 'close' };

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
        headers: SHUTTING_DOWN_HEADERS,
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

/** The error handler's problem for anything a route, hook or Fastify itself threw. */
export function problemFromRequestError(error: FastifyError, request: FastifyRequest): HttpProblem {
  if (error instanceof HttpProblem) return error;
  if (error instanceof TopicMetadataError) return problemFromServiceError(error, { hadIdempotencyKey: false });
  if (Array.isArray(error.validation)) {
    const errors = fieldErrorsFromAjv(error.validation as AjvErrorLike[]);
    return new HttpProblem('TXGATE_INVALID_REQUEST', summarizeFieldErrors(errors), { extensions: { errors } });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpProblem('TXGATE_BODY_TOO_LARGE', `the request body is larger than ${request.routeOptions.bodyLimit ?? 'the limit of'} bytes; split the records over several requests`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpProblem('TXGATE_UNSUPPORTED_MEDIA_TYPE', `send the body as JSON with "Content-Type: application/json" (got ${JSON.stringify(request.headers['content-type'] ?? 'none')})`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HttpProblem('TXGATE_INVALID_JSON', 'the body is empty; send {"records": [...]}', { extensions: { errors: [{ pointer: '', detail: 'empty body' }] } });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new HttpProblem('TXGATE_INVALID_JSON', 'the body is not valid JSON (or uses a "__proto__" or "constructor.prototype" key, which the gateway refuses)', {
        extensions: { errors: [{ pointer: '', detail: 'not valid JSON' }] },
      });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpProblem('TXGATE_INVALID_REQUEST', 'the body does not match its Content-Length header');
  }
  // Other client errors Fastify detects itself (bad URL encoding and the like).
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new HttpProblem('TXGATE_INVALID_REQUEST', error.message);
  }
  return new HttpProblem('TXGATE_INTERNAL', `an unexpected error occurred (request ${request.id}); it has been logged`, { cause: error });
}

/** Fastify's refusals before routing (a URL with an invalid %-escape). */
export function problemFromFrameworkError(error: FastifyError): HttpProblem {
  const detail = error.code === 'FST_ERR_BAD_URL' ? 'the URL has an invalid %-escape' : `the request was refused before routing (${error.code})`;
  return new HttpProblem('TXGATE_INVALID_REQUEST', detail);
}

/** A request Node's HTTP parser refused: malformed, headers over MAX_HEADER_BYTES, or too slow. */
export function problemFromClientError(error: ConnectionError, limits: GatewayLimits): HttpProblem {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new HttpProblem(
      'TXGATE_REQUEST_TIMEOUT',
      `the request did not arrive in time: the headers must arrive within ${limits.headersTimeoutMs} ms and the whole request within ${limits.requestTimeoutMs} ms`,
    );
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return new HttpProblem('TXGATE_HEADERS_TOO_LARGE', `the request line and headers are larger than ${MAX_HEADER_BYTES} bytes`);
  }
  // Only the parser's reason: the error also carries the raw bytes received, credentials included.
  const parserReason = (error as { reason?: unknown }).reason;
  const reason = typeof parserReason === 'string' ? parserReason : error.code;
  return new HttpProblem('TXGATE_INVALID_REQUEST', `malformed HTTP request (${reason})`);
}

/** A new transaction while the gateway drains. */
export function drainingProblem(): HttpProblem {
  return new HttpProblem('TXGATE_SHUTTING_DOWN', 'the gateway is shutting down and takes no new transactions; retry against another instance or after the Retry-After delay', {
    headers: SHUTTING_DOWN_HEADERS,
  });
}

/** A new transaction while start-up is still at `step`. */
export function startingProblem(step: string | undefined): HttpProblem {
  return new HttpProblem(
    'TXGATE_NOT_READY',
    `the gateway is still starting (${step ?? 'beginning'}) and takes no transactions yet; nothing was written, retry after the Retry-After delay`,
    { headers: retryAfter(RETRY_AFTER_STARTING_S) },
  );
}

/** GET /readyz when not ready; `checks` says why. */
export function notReadyProblem(checks: ReadyReport['checks']): HttpProblem {
  return new HttpProblem('TXGATE_NOT_READY', `not ready: ${describeNotReady(checks)}`, {
    extensions: { checks },
    headers: retryAfter(RETRY_AFTER_SHUTTING_DOWN_S),
  });
}
