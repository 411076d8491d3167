/**
 * The OpenAPI 3.1 document, assembled from the very schema objects that validate requests
 * (schemas.ts) and the problem catalog (problems.ts).
 */
import { PROBLEMS, PROBLEM_CONTENT_TYPE, problemType, type ProblemCode } from './problems.js';
import {
  HealthSchema,
  IDEMPOTENCY_KEY_PATTERN,
  ProblemSchema,
  ReadySchema,
  TransactionCommittedSchema,
  TransactionRequestSchema,
  plainSchema,
} from './schemas.js';
import type { RecordLimits } from '../defaults.js';
import { StatsSchema } from './dashboard/schema.js';

export interface OpenApiOptions {
  version: string;
  limits: RecordLimits & { maxBodyBytes: number };
  authEnabled: boolean;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function problemResponse(description: string, codes: ProblemCode[], retryAfter = false) {
  const response: Record<string, unknown> = {
    description: `${description} Codes: ${codes.map((c) => `\`${c}\` (${problemType(c)})`).join(', ')}.`,
    content: { [PROBLEM_CONTENT_TYPE]: { schema: ref('Problem') } },
  };
  if (retryAfter) {
    response['headers'] = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 0 } } };
  }
  return response;
}

export function buildOpenApiDocument(opts: OpenApiOptions): Record<string, unknown> {
  const { limits } = opts;
  const transactionResponses: Record<string, unknown> = {
    '200': {
      description: 'Every record was committed in one Kafka transaction.',
      headers: {
        'Idempotent-Replayed': {
          description: 'Present ("true") when this is the stored outcome of an earlier request with the same Idempotency-Key; nothing new was written.',
          schema: { type: 'string', enum: ['true'] },
        },
      },
      content: { 'application/json': { schema: ref('TransactionCommitted') } },
    },
    '400': problemResponse('The body or the Idempotency-Key is invalid; `errors` points at each bad field.', ['TXGATE_INVALID_REQUEST', 'TXGATE_INVALID_JSON', 'TXGATE_VALUE_TOO_DEEP', 'TXGATE_INVALID_IDEMPOTENCY_KEY']),
    '401': problemResponse('No valid API key (only when API keys are configured).', ['TXGATE_UNAUTHORIZED']),
    '403': problemResponse("A topic is not in the API key's allowlist, or is internal.", ['TXGATE_TOPIC_FORBIDDEN', 'TXGATE_INTERNAL_TOPIC']),
    '404': problemResponse('A topic or partition does not exist.', ['TXGATE_UNKNOWN_TOPIC', 'TXGATE_UNKNOWN_PARTITION']),
    '409': problemResponse('A request with the same Idempotency-Key is still in progress.', ['TXGATE_IDEMPOTENCY_IN_FLIGHT']),
    '413': problemResponse(
      `A limit was exceeded: body ${limits.maxBodyBytes} bytes, ${limits.maxRecords} records, ${limits.maxRecordBytes} bytes per record, ${limits.maxHeadersPerRecord} headers per record (or Kafka's own record size limit).`,
      ['TXGATE_BODY_TOO_LARGE', 'TXGATE_TOO_MANY_RECORDS', 'TXGATE_RECORD_TOO_LARGE', 'TXGATE_TOO_MANY_HEADERS'],
    ),
    '415': problemResponse('The body is not application/json.', ['TXGATE_UNSUPPORTED_MEDIA_TYPE']),
    '422': problemResponse('The Idempotency-Key was used with another body, or Kafka refused one of the records (nothing was written).', ['TXGATE_IDEMPOTENCY_MISMATCH', 'TXGATE_RECORD_REJECTED']),
    '500': problemResponse('The transaction was aborted: nothing was written, a retry is safe.', ['TXGATE_TRANSACTION_ABORTED', 'TXGATE_INTERNAL']),
    '503': problemResponse('Saturated, shutting down, or Kafka unreachable: nothing was written; retry after Retry-After.', ['TXGATE_POOL_SATURATED', 'TXGATE_ACQUIRE_TIMEOUT', 'TXGATE_SHUTTING_DOWN', 'TXGATE_IDEMPOTENCY_UNAVAILABLE', 'TXGATE_KAFKA_UNAVAILABLE'], true),
    '504': problemResponse('The commit outcome is unknown: retry with the same Idempotency-Key and body to learn it.', ['TXGATE_TRANSACTION_OUTCOME_UNKNOWN']),
  };

  const doc: Record<string, unknown> = {
    openapi: '3.1.0',
    info: {
      title: 'txgate HTTP gateway',
      version: opts.version,
      description:
        'Each POST /v1/transactions commits all of its records, across any topics and partitions, in one Kafka transaction: all become visible to read_committed consumers, or none. Errors are RFC 9457 problem details.',
    },
    paths: {
      '/v1/transactions': {
        post: {
          operationId: 'commitTransaction',
          summary: 'Write records to Kafka atomically',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description:
                'Makes retries safe: the same key and body return the first outcome again (with Idempotent-Replayed: true) and write nothing new. 1 to 255 printable ASCII characters.',
              schema: { type: 'string', pattern: IDEMPOTENCY_KEY_PATTERN, minLength: 1, maxLength: 255 },
            },
            {
              name: 'traceparent',
              in: 'header',
              required: false,
              description:
                "W3C Trace Context: the request's span continues this trace, and every record written gets traceparent (and tracestate) headers for its consumers, unless the record already carries its own.",
              schema: { type: 'string' },
            },
            {
              name: 'tracestate',
              in: 'header',
              required: false,
              description: 'W3C Trace Context vendor state, carried along with traceparent.',
              schema: { type: 'string' },
            },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: ref('TransactionRequest') } } },
          responses: transactionResponses,
          ...(opts.authEnabled ? { security: [{ bearerAuth: [] }] } : {}),
        },
      },
      '/v1/stats': {
        get: {
          operationId: 'stats',
          summary: "The dashboard's live figures: pool slots, transactions by outcome, latency, errors by code",
          description:
            'What the dashboard at GET /dashboard (and GET /) polls once a second: cumulative totals, the state of every producer, and per-second intervals of the last 10 minutes. With API keys on, it needs a key, like POST /v1/transactions; it never names topics.',
          parameters: [
            {
              name: 'since',
              in: 'query',
              required: false,
              description: 'The lastSeq of an earlier answer: only newer intervals are listed (all kept ones without it).',
              schema: { type: 'string', pattern: '^[0-9]{1,15}$' },
            },
          ],
          responses: {
            '200': { description: 'The figures now.', content: { 'application/json': { schema: ref('Stats') } } },
            '400': problemResponse('`since` is not a non-negative integer.', ['TXGATE_INVALID_REQUEST']),
            '401': problemResponse('No valid API key (only when API keys are configured).', ['TXGATE_UNAUTHORIZED']),
            '503': problemResponse('The gateway is starting or shutting down.', ['TXGATE_NOT_READY', 'TXGATE_SHUTTING_DOWN'], true),
          },
          ...(opts.authEnabled ? { security: [{ bearerAuth: [] }] } : {}),
        },
      },
      '/healthz': {
        get: {
          operationId: 'health',
          summary: 'Liveness: the process is up',
          security: [],
          responses: { '200': { description: 'Alive.', content: { 'application/json': { schema: ref('Health') } } } },
        },
      },
      '/readyz': {
        get: {
          operationId: 'ready',
          summary: 'Readiness: producers initialised and a broker reachable; 503 while shutting down',
          security: [],
          responses: {
            '200': { description: 'Ready to take requests.', content: { 'application/json': { schema: ref('Ready') } } },
            '503': problemResponse('Not ready (starting, draining, or Kafka unreachable).', ['TXGATE_NOT_READY'], true),
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics (HTTP, gateway and pool)',
          security: [],
          responses: { '200': { description: 'Prometheus text exposition format.', content: { 'text/plain': { schema: { type: 'string' } } } } },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document',
          security: [],
          responses: { '200': { description: 'The OpenAPI 3.1 document.', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
    components: {
      schemas: {
        TransactionRequest: plainSchema(TransactionRequestSchema),
        TransactionCommitted: plainSchema(TransactionCommittedSchema),
        Problem: {
          ...plainSchema(ProblemSchema),
          properties: {
            ...(plainSchema(ProblemSchema)['properties'] as Record<string, unknown>),
            code: { type: 'string', enum: Object.keys(PROBLEMS), description: 'Stable machine-readable code.' },
          },
        },
        Health: plainSchema(HealthSchema),
        Ready: plainSchema(ReadySchema),
        Stats: plainSchema(StatsSchema),
      },
      ...(opts.authEnabled ? { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key configured with --api-keys / TXGATE_API_KEYS.' } } } : {}),
    },
  };
  return doc;
}
