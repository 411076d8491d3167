/**
 * RFC 9457 problem details. Every error the gateway sends is one of the problems below: each has
 * a stable `type` URI and `code` (clients branch on those, never on `detail`), and the HTTP
 * status it always comes with. The README's error table lists the same.
 */

/**
 * A relative reference, resolved against the request's URL (RFC 9457 allows it): each type is a
 * page the gateway itself serves (problem-pages.ts), so it resolves wherever the gateway runs.
 */
export const PROBLEM_TYPE_BASE = '/problems/';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

interface ProblemKind {
  slug: string;
  title: string;
  status: number;
}

export const PROBLEMS = {
  TXGATE_INVALID_REQUEST: { slug: 'invalid-request', title: 'The request body is invalid', status: 400 },
  TXGATE_INVALID_JSON: { slug: 'invalid-json', title: 'The request body is not valid JSON', status: 400 },
  TXGATE_VALUE_TOO_DEEP: { slug: 'value-too-deep', title: 'A record value is nested too deeply', status: 400 },
  TXGATE_INVALID_IDEMPOTENCY_KEY: { slug: 'invalid-idempotency-key', title: 'The Idempotency-Key header is invalid', status: 400 },
  TXGATE_UNAUTHORIZED: { slug: 'unauthorized', title: 'A valid API key is required', status: 401 },
  TXGATE_TOPIC_FORBIDDEN: { slug: 'topic-forbidden', title: 'This API key may not write to the topic', status: 403 },
  TXGATE_INTERNAL_TOPIC: { slug: 'internal-topic', title: 'Internal topics cannot be written through the gateway', status: 403 },
  TXGATE_NOT_FOUND: { slug: 'not-found', title: 'No such endpoint', status: 404 },
  TXGATE_UNKNOWN_TOPIC: { slug: 'unknown-topic', title: 'The topic does not exist', status: 404 },
  TXGATE_UNKNOWN_PARTITION: { slug: 'unknown-partition', title: 'The partition does not exist', status: 404 },
  TXGATE_METHOD_NOT_ALLOWED: { slug: 'method-not-allowed', title: 'Method not allowed', status: 405 },
  TXGATE_REQUEST_TIMEOUT: { slug: 'request-timeout', title: 'The request did not arrive in time', status: 408 },
  TXGATE_IDEMPOTENCY_IN_FLIGHT: { slug: 'idempotency-key-in-flight', title: 'A request with this Idempotency-Key is still in progress', status: 409 },
  TXGATE_BODY_TOO_LARGE: { slug: 'body-too-large', title: 'The request body is too large', status: 413 },
  TXGATE_TOO_MANY_RECORDS: { slug: 'too-many-records', title: 'The request has too many records', status: 413 },
  TXGATE_RECORD_TOO_LARGE: { slug: 'record-too-large', title: 'A record is too large', status: 413 },
  TXGATE_TOO_MANY_HEADERS: { slug: 'too-many-headers', title: 'A record has too many headers', status: 413 },
  TXGATE_UNSUPPORTED_MEDIA_TYPE: { slug: 'unsupported-media-type', title: 'The request body must be application/json', status: 415 },
  TXGATE_IDEMPOTENCY_MISMATCH: { slug: 'idempotency-key-reused', title: 'The Idempotency-Key was already used with a different request body', status: 422 },
  TXGATE_RECORD_REJECTED: { slug: 'record-rejected', title: 'Kafka rejected a record of this request', status: 422 },
  TXGATE_HEADERS_TOO_LARGE: { slug: 'headers-too-large', title: 'The request headers are too large', status: 431 },
  TXGATE_CLIENT_CLOSED_REQUEST: { slug: 'client-closed-request', title: 'The client went away before a producer was free', status: 499 },
  TXGATE_TRANSACTION_ABORTED: { slug: 'transaction-aborted', title: 'The transaction was aborted; nothing was written', status: 500 },
  TXGATE_INTERNAL: { slug: 'internal-error', title: 'Internal server error', status: 500 },
  TXGATE_POOL_SATURATED: { slug: 'saturated', title: 'The gateway is saturated', status: 503 },
  TXGATE_ACQUIRE_TIMEOUT: { slug: 'acquire-timeout', title: 'No Kafka producer became free in time', status: 503 },
  TXGATE_SHUTTING_DOWN: { slug: 'shutting-down', title: 'The gateway is shutting down', status: 503 },
  TXGATE_IDEMPOTENCY_UNAVAILABLE: { slug: 'idempotency-unavailable', title: 'Idempotency state is temporarily unavailable', status: 503 },
  TXGATE_KAFKA_UNAVAILABLE: { slug: 'kafka-unavailable', title: 'Kafka is temporarily unreachable', status: 503 },
  TXGATE_NOT_READY: { slug: 'not-ready', title: 'The gateway is not ready', status: 503 },
  TXGATE_TRANSACTION_OUTCOME_UNKNOWN: { slug: 'transaction-outcome-unknown', title: 'The transaction outcome is unknown', status: 504 },
} as const satisfies Record<string, ProblemKind>;

export type ProblemCode = keyof typeof PROBLEMS;

/** One field-level problem; `pointer` is an RFC 6901 JSON Pointer into the request body. */
export interface FieldError {
  pointer: string;
  detail: string;
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: ProblemCode;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export function problemType(code: ProblemCode): string {
  return PROBLEM_TYPE_BASE + PROBLEMS[code].slug;
}

/**
 * Thrown anywhere in request handling; the gateway's error handler turns it into the response.
 * `headers` carries e.g. Retry-After or WWW-Authenticate.
 */
export class HttpProblem extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(
    code: ProblemCode,
    detail: string,
    opts: { extensions?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail, { cause: opts.cause });
    this.name = 'HttpProblem';
    this.code = code;
    this.status = PROBLEMS[code].status;
    this.extensions = opts.extensions ?? {};
    this.headers = opts.headers ?? {};
  }

  toDocument(instance?: string): ProblemDocument {
    const kind = PROBLEMS[this.code];
    const doc: ProblemDocument = {
      ...this.extensions,
      type: problemType(this.code),
      title: kind.title,
      status: kind.status,
      detail: this.message,
      code: this.code,
    };
    if (instance !== undefined) doc.instance = instance;
    return doc;
  }
}
