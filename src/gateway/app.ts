/**
 * The HTTP layer: a Fastify instance that turns each POST /v1/transactions into one
 * TransactionService.submit(), plus health, readiness, metrics and the OpenAPI document.
 * Everything it needs is injected, so tests drive it with fastify.inject() or a real listen().
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { Registry } from 'prom-client';
import type { OutgoingRecord, RecordMetadata } from '../pool/producer-port.js';
import type { PoolStats } from '../pool/types.js';
import { ApiKeyAuthenticator, type ApiKeySpec, type Principal } from './auth.js';
import { problemFromServiceError, RETRY_AFTER_SHUTTING_DOWN_S } from './error-mapping.js';
import { requestFingerprint } from './fingerprint.js';
import { IDEMPOTENCY_KEY_HEADER, parseIdempotencyKey, scopeIdempotencyKey } from './idempotency-key.js';
import { registerHttpMetrics, registerServiceMetrics, type ServiceStats } from './metrics.js';
import { buildOpenApiDocument } from './openapi.js';
import { HttpProblem, PROBLEM_CONTENT_TYPE } from './problems.js';
import { checkTopicsExist, DEFAULT_RECORD_LIMITS, prepareRecords, type RecordLimits } from './records.js';
import { TransactionCommittedSchema, TransactionRequestSchema, type TransactionCommitted, type TransactionRequest } from './schemas.js';
import { TopicMetadataError, type TopicCatalog } from './topic-catalog.js';
import { fieldErrorsFromAjv, summarizeFieldErrors, type AjvErrorLike } from './validation-errors.js';

/** What the HTTP layer needs of TransactionService (src/gateway/transaction-service.ts). */
export interface GatewayService {
  submit(req: {
    records: OutgoingRecord[];
    idempotency?: { key: string; fingerprint: string };
    signal?: AbortSignal;
  }): Promise<{ records: RecordMetadata[]; replayed: boolean }>;
  stats(): ServiceStats;
}

export interface GatewayLimits extends RecordLimits {
  /** Bytes of one request body. */
  maxBodyBytes: number;
}

export const DEFAULT_GATEWAY_LIMITS: GatewayLimits = { ...DEFAULT_RECORD_LIMITS, maxBodyBytes: 1024 * 1024 };

/** The default idempotency topic; Kafka's own topics start with "__". Neither is writable by clients. */
export const DEFAULT_IDEMPOTENCY_TOPIC = 'txgate.idempotency';

/** Shared between the server's lifecycle and the routes: draining flips readiness and refuses new work. */
export class GatewayState {
  draining = false;
}

export interface GatewayDeps {
  service: GatewayService;
  topics: TopicCatalog;
  /** For readiness: ready while the pool is open and has a producer that is not being replaced. */
  pool?: { stats(): PoolStats };
  state?: GatewayState;
  /** Where HTTP and service metrics go; pool metrics are registered on it by the owner. */
  registry?: Registry;
  /** API keys; none (the default): no authentication. */
  apiKeys?: ApiKeySpec[];
  limits?: Partial<GatewayLimits>;
  /** Topics clients may not write besides "__*" (default: the idempotency topic). */
  internalTopics?: string[];
  logger?: FastifyServerOptions['logger'];
  version?: string;
  readiness?: {
    /** How long a broker reachability result is reused. */
    cacheMs?: number;
    /** Timeout of the metadata request that proves a broker is reachable. */
    timeoutMs?: number;
  };
}

interface ReadyReport {
  ready: boolean;
  checks: { draining: boolean; pool: string; kafka: string };
}

export function buildGateway(deps: GatewayDeps): FastifyInstance {
  const limits: GatewayLimits = { ...DEFAULT_GATEWAY_LIMITS, ...deps.limits };
  const state = deps.state ?? new GatewayState();
  const registry = deps.registry ?? new Registry();
  const auth = new ApiKeyAuthenticator(deps.apiKeys ?? []);
  const internal = new Set(deps.internalTopics ?? [DEFAULT_IDEMPOTENCY_TOPIC]);
  const isInternalTopic = (topic: string) => internal.has(topic) || topic.startsWith('__');
  const principals = new WeakMap<FastifyRequest, Principal>();
  const httpMetrics = registerHttpMetrics(registry);
  registerServiceMetrics(registry, () => deps.service.stats());
  const openapi = buildOpenApiDocument({ version: deps.version ?? '0.0.0', limits, authEnabled: auth.enabled });

  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    genReqId: () => randomUUID(),
    // Per-request lines are ours (onResponse below): debug for successes, info for refusals.
    logController: new LogController({ disableRequestLogging: true }),
    // Draining is answered by our own hook with a problem document, not Fastify's plain 503.
    return503OnClosing: false,
    ajv: {
      // Validate exactly what was sent: no type coercion, no silently dropped unknown fields, and
      // every error at once so a client can fix them in one go.
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: true },
    },
  });

  // Only application/json: a text/plain body must get 415, not a schema error.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (state.draining && request.url.startsWith('/v1/')) {
      throw new HttpProblem('TXGATE_SHUTTING_DOWN', 'the gateway is shutting down and takes no new transactions; retry against another instance or after the Retry-After delay', {
        headers: { 'retry-after': String(RETRY_AFTER_SHUTTING_DOWN_S), connection: 'close' },
      });
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpMetrics.observe(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    if (reply.statusCode >= 400 && reply.statusCode < 500) {
      request.log.info({ method: request.method, url: request.url, status: reply.statusCode }, 'request refused');
    } else {
      request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request completed');
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const problem = toProblem(error, request);
    if (problem.status >= 500 && problem.status !== 503) {
      // The underlying error (with its cause chain) is for the operator; the client gets the problem only.
      request.log.error({ err: problem === error ? (problem.cause ?? error) : error, code: problem.code }, 'request failed');
    } else if (problem.status === 503 || problem.status === 499) {
      request.log.warn({ code: problem.code, reason: error.message }, 'request refused');
    }
    return sendProblem(reply, problem, request);
  });

  const allowed: Record<string, string> = {
    '/v1/transactions': 'POST',
    '/healthz': 'GET, HEAD',
    '/readyz': 'GET, HEAD',
    '/metrics': 'GET, HEAD',
    '/openapi.json': 'GET, HEAD',
  };
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allow = allowed[path];
    const problem = allow
      ? new HttpProblem('TXGATE_METHOD_NOT_ALLOWED', `${path} takes ${allow}, not ${request.method}`, { headers: { allow } })
      : new HttpProblem('TXGATE_NOT_FOUND', `there is no ${request.method} ${path}; the API is described at GET /openapi.json`);
    return sendProblem(reply, problem, request);
  });

  app.post<{ Body: TransactionRequest }>(
    '/v1/transactions',
    {
      schema: { body: TransactionRequestSchema, response: { 200: TransactionCommittedSchema } },
      onRequest: async (request) => {
        if (auth.enabled) principals.set(request, auth.authenticate(request.headers.authorization));
      },
    },
    async (request, reply): Promise<TransactionCommitted> => {
      const key = parseIdempotencyKey(request.headers[IDEMPOTENCY_KEY_HEADER]);
      const principal = principals.get(request);
      const prepared = prepareRecords(request.body, { limits, principal, isInternalTopic });
      checkTopicsExist(request.body, await deps.topics.lookup(prepared.topics));

      // The client went away: the service stops waiting for a producer (it never abandons a
      // transaction it has started).
      const gone = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) gone.abort(new Error('client closed the connection'));
      };
      reply.raw.once('close', onClose);
      try {
        const result = await deps.service.submit({
          records: prepared.records,
          ...(key !== undefined ? { idempotency: { key: scopeIdempotencyKey(key, principal?.name), fingerprint: requestFingerprint(request.body) } } : {}),
          signal: gone.signal,
        });
        if (result.replayed) reply.header('idempotent-replayed', 'true');
        return {
          status: 'committed',
          records: result.records.map((r) => ({ topic: r.topic, partition: r.partition, offset: String(r.offset) })),
        };
      } catch (err) {
        throw problemFromServiceError(err, { hadIdempotencyKey: key !== undefined });
      } finally {
        reply.raw.off('close', onClose);
      }
    },
  );

  app.get('/healthz', async () => ({ status: 'ok' }));

  const readiness = readinessProbe(deps, state);
  app.get('/readyz', async (_request, reply) => {
    const report = await readiness();
    if (report.ready) return { status: 'ready', checks: report.checks };
    const why = report.checks.draining ? 'the gateway is shutting down' : `pool: ${report.checks.pool}; kafka: ${report.checks.kafka}`;
    throw new HttpProblem('TXGATE_NOT_READY', `not ready: ${why}`, {
      extensions: { checks: report.checks },
      headers: { 'retry-after': String(RETRY_AFTER_SHUTTING_DOWN_S) },
    });
  });

  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  app.get('/openapi.json', async () => openapi);

  return app;
}

function toProblem(error: FastifyError, request: FastifyRequest): HttpProblem {
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

function sendProblem(reply: FastifyReply, problem: HttpProblem, request: FastifyRequest): FastifyReply {
  for (const [name, value] of Object.entries(problem.headers)) reply.header(name, value);
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify(problem.toDocument(`urn:uuid:${request.id}`)));
}

/** Readiness: not draining, the pool can lend a producer, and a broker answered a metadata request recently. */
function readinessProbe(deps: GatewayDeps, state: GatewayState): () => Promise<ReadyReport> {
  const cacheMs = deps.readiness?.cacheMs ?? 2_000;
  const timeoutMs = deps.readiness?.timeoutMs ?? 2_000;
  let kafka: { status: string; at: number } | undefined;
  let probing: Promise<string> | undefined;
  const probeKafka = async (): Promise<string> => {
    const now = Date.now();
    if (kafka && now - kafka.at < cacheMs) return kafka.status;
    probing ??= deps.topics
      .ping(timeoutMs)
      .then(
        () => 'ok',
        (err: unknown) => `unreachable (${err instanceof Error ? err.message : String(err)})`,
      )
      .then((status) => {
        kafka = { status, at: Date.now() };
        probing = undefined;
        return status;
      });
    return probing;
  };
  const poolStatus = (): string => {
    if (!deps.pool) return 'ok';
    const s = deps.pool.stats();
    if (s.closed) return 'closed';
    if (s.size === 0 || s.replacing >= s.size) return `no usable producer (${s.replacing} of ${s.size} being replaced)`;
    return 'ok';
  };
  return async () => {
    const pool = poolStatus();
    const kafkaStatus = state.draining ? 'not checked' : await probeKafka();
    const checks = { draining: state.draining, pool, kafka: kafkaStatus };
    return { ready: !state.draining && pool === 'ok' && kafkaStatus === 'ok', checks };
  };
}
