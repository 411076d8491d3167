/**
 * Every stable error code txgate uses, each once, with everything attached to it: the TxGateError
 * class that carries it (src/errors.ts takes its codes from here: a code missing here does not
 * compile), and, when the HTTP gateway answers with it, the problem's status, `type`
 * (`/problems/<slug>`), title and help text (src/gateway/http/problems.ts and problem-pages.ts
 * derive everything from here). A code the gateway never sends as such names the problem it is
 * answered with instead. The README's error tables say the same; test/unit/error-catalogue.test.ts
 * and gateway-problem-pages.test.ts fail when they, or any code used in src/, test/ or bench/,
 * disagree.
 *
 * Order matters: it is the order of GET /problems and of the OpenAPI document's code enum.
 */

/** A code the gateway sends as a problem document of its own. */
export interface ProblemEntry {
  /** The TxGateError subclass that carries the code, when the library or the service throws it. */
  class?: string;
  status: number;
  /** The problem `type` is `/problems/<slug>`, a page the gateway serves. */
  slug: string;
  title: string;
  /** What it means and what to do (the problem's page, and the README's error table). */
  help: string;
  /** Whether anything of the request was written ("no", "unknown", ...). */
  written: string;
}

/** A library code that reaches HTTP only as another problem. */
export interface AnsweredAsEntry {
  class: string;
  /** The problem the gateway answers with when this error reaches it (error-mapping.ts; a test checks they agree). */
  answeredAs: string;
}

export const ERROR_CATALOGUE = {
  TXGATE_INVALID_REQUEST: {
    status: 400, slug: 'invalid-request', title: 'The request body is invalid', written: 'no',
    help: 'The body does not match the schema, or holds a number a double cannot hold exactly or a key or header with an unpaired surrogate; errors points at each field. Or the HTTP request itself is malformed (see Hostile input). Fix and resend.',
  },
  TXGATE_INVALID_JSON: {
    status: 400, slug: 'invalid-json', title: 'The request body is not valid JSON', written: 'no',
    help: 'The body is not JSON, not UTF-8, uses a __proto__ or constructor.prototype key, or is empty.',
  },
  TXGATE_VALUE_TOO_DEEP: {
    status: 400, slug: 'value-too-deep', title: 'A record value is nested too deeply', written: 'no',
    help: "A record's JSON value nests more than 1000 levels (send it as valueBase64).",
  },
  TXGATE_INVALID_IDEMPOTENCY_KEY: {
    status: 400, slug: 'invalid-idempotency-key', title: 'The Idempotency-Key header is invalid', written: 'no',
    help: 'The key is empty, longer than 255, or not printable ASCII.',
  },
  TXGATE_UNAUTHORIZED: {
    status: 401, slug: 'unauthorized', title: 'A valid API key is required', written: 'no',
    help: 'No, malformed, or unknown bearer token.',
  },
  TXGATE_TOPIC_FORBIDDEN: {
    status: 403, slug: 'topic-forbidden', title: 'This API key may not write to the topic', written: 'no',
    help: "A topic is outside the API key's allowlist.",
  },
  TXGATE_INTERNAL_TOPIC: {
    status: 403, slug: 'internal-topic', title: 'Internal topics cannot be written through the gateway', written: 'no',
    help: 'The idempotency topic or a __* topic.',
  },
  TXGATE_NOT_FOUND: {
    status: 404, slug: 'not-found', title: 'No such endpoint', written: 'no',
    help: 'No such endpoint (or page); the API is described at GET /openapi.json.',
  },
  TXGATE_UNKNOWN_TOPIC: {
    status: 404, slug: 'unknown-topic', title: 'The topic does not exist', written: 'no',
    help: 'A topic does not exist; create it first.',
  },
  TXGATE_UNKNOWN_PARTITION: {
    status: 404, slug: 'unknown-partition', title: 'The partition does not exist', written: 'no',
    help: 'The topic has fewer partitions; omit partition or pick one that exists.',
  },
  TXGATE_METHOD_NOT_ALLOWED: {
    status: 405, slug: 'method-not-allowed', title: 'Method not allowed', written: 'no',
    help: 'The endpoint exists but takes another method (see Allow).',
  },
  TXGATE_REQUEST_TIMEOUT: {
    status: 408, slug: 'request-timeout', title: 'The request did not arrive in time', written: 'no',
    help: 'The headers or the whole request did not arrive within --headers-timeout-ms / --request-timeout-ms; the connection is closed.',
  },
  TXGATE_IDEMPOTENCY_IN_FLIGHT: {
    class: 'IdempotencyKeyInFlightError', status: 409, slug: 'idempotency-key-in-flight', title: 'A request with this Idempotency-Key is still in progress', written: 'not by this request',
    help: 'The first request with this key is still running; retry later with the same key to get its outcome.',
  },
  TXGATE_BODY_TOO_LARGE: {
    status: 413, slug: 'body-too-large', title: 'The request body is too large', written: 'no',
    help: 'The body is over --max-body-bytes; split the records.',
  },
  TXGATE_TOO_MANY_RECORDS: {
    status: 413, slug: 'too-many-records', title: 'The request has too many records', written: 'no',
    help: 'More than --max-records records.',
  },
  TXGATE_RECORD_TOO_LARGE: {
    status: 413, slug: 'record-too-large', title: 'A record is too large', written: 'no',
    help: 'A record is over --max-record-bytes, or Kafka refused it as too large (kafkaCodeName: MSG_SIZE_TOO_LARGE).',
  },
  TXGATE_TOO_MANY_HEADERS: {
    status: 413, slug: 'too-many-headers', title: 'A record has too many headers', written: 'no',
    help: 'A record has more than --max-headers headers.',
  },
  TXGATE_UNSUPPORTED_MEDIA_TYPE: {
    status: 415, slug: 'unsupported-media-type', title: 'The request body must be application/json', written: 'no',
    help: 'Send Content-Type: application/json.',
  },
  TXGATE_IDEMPOTENCY_MISMATCH: {
    class: 'IdempotencyKeyMismatchError', status: 422, slug: 'idempotency-key-reused', title: 'The Idempotency-Key was already used with a different request body', written: 'no',
    help: 'The key was used before with a different body; use a new key for a new request.',
  },
  TXGATE_RECORD_REJECTED: {
    class: 'RecordRejectedError', status: 422, slug: 'record-rejected', title: 'Kafka rejected a record of this request', written: 'no',
    help: "Kafka refused one of this request's records (kafkaCode, kafkaCodeName, pointer in errors); fix the record. Requests that shared its transaction are unaffected.",
  },
  TXGATE_HEADERS_TOO_LARGE: {
    status: 431, slug: 'headers-too-large', title: 'The request headers are too large', written: 'no',
    help: 'The request line and headers are over 16 KiB.',
  },
  TXGATE_CLIENT_CLOSED_REQUEST: {
    status: 499, slug: 'client-closed-request', title: 'The client went away before a producer was free', written: 'no',
    help: '(Logs and metrics only: the client disconnected while waiting for a producer; no one receives it.)',
  },
  TXGATE_TRANSACTION_ABORTED: {
    class: 'TransactionAbortedError', status: 500, slug: 'transaction-aborted', title: 'The transaction was aborted; nothing was written', written: 'no',
    help: 'The transaction was aborted; nothing is visible. Retrying is safe.',
  },
  TXGATE_INTERNAL: {
    status: 500, slug: 'internal-error', title: 'Internal server error', written: 'unknown',
    help: 'Unexpected; logged with the request id. Retry with the same Idempotency-Key to learn the outcome.',
  },
  TXGATE_POOL_SATURATED: {
    class: 'PoolSaturatedError', status: 503, slug: 'saturated', title: 'The gateway is saturated', written: 'no',
    help: 'Every producer is busy and the wait queue is full. Retry-After says when to retry.',
  },
  TXGATE_ACQUIRE_TIMEOUT: {
    class: 'AcquireTimeoutError', status: 503, slug: 'acquire-timeout', title: 'No Kafka producer became free in time', written: 'no',
    help: 'No producer became free within --acquire-timeout-ms. Retry-After.',
  },
  TXGATE_SHUTTING_DOWN: {
    status: 503, slug: 'shutting-down', title: 'The gateway is shutting down', written: 'no',
    help: 'The gateway is draining; retry on another instance. Retry-After.',
  },
  TXGATE_IDEMPOTENCY_UNAVAILABLE: {
    class: 'IdempotencyUnavailableError', status: 503, slug: 'idempotency-unavailable', title: 'Idempotency state is temporarily unavailable', written: 'no',
    help: "The key's history could not be confirmed in time. Retry-After.",
  },
  TXGATE_KAFKA_UNAVAILABLE: {
    class: 'KafkaUnavailableError', status: 503, slug: 'kafka-unavailable', title: 'Kafka is temporarily unreachable', written: 'no',
    help: "No Kafka broker answered the gateway's last metadata request (the same check as /readyz), or topic metadata could not be read: refused at once. Retry-After.",
  },
  TXGATE_NOT_READY: {
    status: 503, slug: 'not-ready', title: 'The gateway is not ready', written: 'no',
    help: '(/readyz, and transactions while starting) not ready; checks says why. Retry-After.',
  },
  TXGATE_TRANSACTION_OUTCOME_UNKNOWN: {
    class: 'TransactionOutcomeUnknownError', status: 504, slug: 'transaction-outcome-unknown', title: 'The transaction outcome is unknown', written: 'unknown',
    help: "The commit's outcome is unknown: the records may or may not be visible. Retry with the **same Idempotency-Key and body** to learn the outcome (they are written at most once). Without a key, check the topic before retrying.",
  },
  // Library codes with no problem of their own.
  // The client left; when the wait was ended by Kafka becoming unreachable, TXGATE_KAFKA_UNAVAILABLE instead.
  TXGATE_ACQUIRE_ABORTED: { class: 'AcquireAbortedError', answeredAs: 'TXGATE_CLIENT_CLOSED_REQUEST' },
  TXGATE_POOL_CLOSED: { class: 'PoolClosedError', answeredAs: 'TXGATE_SHUTTING_DOWN' },
  TXGATE_POOL_START_FAILED: { class: 'PoolStartError', answeredAs: 'TXGATE_INTERNAL' },
  TXGATE_TRANSACTION_CLOSED: { class: 'TransactionClosedError', answeredAs: 'TXGATE_INTERNAL' },
  TXGATE_CONFIGURATION: { class: 'ConfigurationError', answeredAs: 'TXGATE_INTERNAL' },
  TXGATE_INTERNAL_INVARIANT: { class: 'SlotInvariantError', answeredAs: 'TXGATE_INTERNAL' },
  TXGATE_START_FAILED: { class: 'GatewayStartError', answeredAs: 'TXGATE_INTERNAL' },
} as const satisfies Record<string, ProblemEntry | AnsweredAsEntry>;

type Catalogue = typeof ERROR_CATALOGUE;

/** Every stable code; TxGateError accepts no other. */
export type ErrorCode = keyof Catalogue;

/** The codes the gateway sends as problem documents. */
export type ProblemCode = { [C in ErrorCode]: Catalogue[C] extends { slug: string } ? C : never }[ErrorCode];

/** A code a library error is answered as must be a problem: this fails to compile otherwise. */
type AnsweredAs = { [C in ErrorCode]: Catalogue[C] extends { answeredAs: infer P } ? P : never }[ErrorCode];
type AnsweredAsIsAProblem<P extends ProblemCode = AnsweredAs> = P;

/** The codes the gateway sends as problem documents, with their entries, in catalogue order. */
export const PROBLEM_ENTRIES: ReadonlyArray<readonly [ProblemCode, ProblemEntry]> = Object.entries(ERROR_CATALOGUE).filter(
  (e): e is [ProblemCode, Catalogue[ProblemCode]] => 'slug' in e[1],
);
