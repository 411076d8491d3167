/**
 * The HTTP layer: a Fastify instance that turns each POST /v1/transactions into one
 * TransactionService.submit(), plus health, readiness, metrics and the OpenAPI document.
 * Everything it needs is injected, so tests drive it with fastify.inject() or a real listen().
 */
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import Fastify, {
  LogController,
  type ConnectionError,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { Registry } from 'prom-client';
import type { OutgoingRecord, RecordMetadata } from '../../pool/producer-port.js';
import type { PoolStats } from '../../pool/types.js';
import { ApiKeyAuthenticator, type ApiKeySpec, type Principal } from './auth.js';
import { problemFromServiceError, RETRY_AFTER_SHUTTING_DOWN_S } from './error-mapping.js';
import { requestFingerprint } from './fingerprint.js';
import { IDEMPOTENCY_KEY_HEADER, parseIdempotencyKey, scopeIdempotencyKey } from './idempotency-key.js';
import { registerHttpMetrics, registerServiceMetrics, type ServiceStats } from './metrics.js';
import { buildOpenApiDocument } from './openapi.js';
import { HttpProblem, PROBLEM_CONTENT_TYPE, type FieldError } from './problems.js';
import { registerProblemPages } from './problem-pages.js';
import { DEFAULT_GATEWAY_LIMITS, DEFAULT_IDEMPOTENCY_TOPIC, MAX_HEADER_BYTES, type GatewayLimits } from '../defaults.js';
import { checkTopicsExist, jsonDepth, MAX_VALUE_DEPTH, prepareRecords } from './records.js';
import { TransactionCommittedSchema, TransactionRequestSchema, type TransactionCommitted, type TransactionRequest } from './schemas.js';
import type { StartupStatus } from '../startup.js';
import { KafkaReachability } from '../service/kafka-reachability.js';
import { TopicMetadataError, type TopicCatalog } from '../service/topic-catalog.js';
import { escapePointerToken, fieldErrorsFromAjv, MAX_REPORTED_FIELD_ERRORS, summarizeFieldErrors, type AjvErrorLike } from './validation-errors.js';

/** What the HTTP layer needs of TransactionService (service/transaction-service.ts). */
export interface GatewayService {
  submit(req: {
    records: OutgoingRecord[];
    idempotency?: { key: string; fingerprint: string };
    signal?: AbortSignal;
  }): Promise<{ records: RecordMetadata[]; replayed: boolean }>;
  stats(): ServiceStats;
}

/** Shared between the server's lifecycle and the routes: draining flips readiness and refuses new work. */
export class GatewayState {
  draining = false;
  /**
   * Set by startGateway while it starts: until its status is 'ready', readiness reports the step
   * start-up is at and new transactions are refused. Unset: started (buildGateway alone).
   */
  startup: { status(): StartupStatus } | undefined;
}

/** Seconds a client should wait before retrying a transaction refused because the gateway is still starting. */
export const RETRY_AFTER_STARTING_S = 2;

/** Start-up's status while it is not done (undefined once the gateway is ready). */
function startupPending(state: GatewayState): StartupStatus | undefined {
  const status = state.startup?.status();
  return status && status.state !== 'ready' ? status : undefined;
}

function describeStartup(s: StartupStatus): string {
  if (s.state === 'failed') return `start-up failed: ${s.failure ?? 'unknown error'}`;
  const at = s.step ? `${s.step} (since ${s.stepSince})` : 'beginning';
  const failing = s.lastError !== undefined ? `, ${s.attempts} failed attempt${s.attempts === 1 ? '' : 's'}, last error at ${s.lastErrorAt}: ${s.lastError}` : '';
  return `starting up: ${at}${failing}; start-up gives up at ${s.deadline}`;
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
  /** startup only while the gateway is starting (pool and kafka are then not checked). */
  checks: { draining: boolean; startup?: StartupStatus; pool: string; kafka: string };
}

export function buildGateway(deps: GatewayDeps): FastifyInstance {
  const limits: GatewayLimits = { ...DEFAULT_GATEWAY_LIMITS, ...deps.limits };
  const state = deps.state ?? new GatewayState();
  const registry = deps.registry ?? new Registry();
  const auth = new ApiKeyAuthenticator(deps.apiKeys ?? []);
  const internal = new Set(deps.internalTopics ?? [DEFAULT_IDEMPOTENCY_TOPIC]);
  const isInternalTopic = (topic: string) => internal.has(topic) || topic.startsWith('__');
  const principals = new WeakMap<FastifyRequest, Principal>();
  const reachability = new KafkaReachability((timeoutMs) => deps.topics.ping(timeoutMs), {
    ...(deps.readiness?.cacheMs !== undefined ? { cacheMs: deps.readiness.cacheMs } : {}),
    ...(deps.readiness?.timeoutMs !== undefined ? { timeoutMs: deps.readiness.timeoutMs } : {}),
  });
  const httpMetrics = registerHttpMetrics(registry);
  registerServiceMetrics(registry, () => deps.service.stats());
  const openapi = buildOpenApiDocument({ version: deps.version ?? '0.0.0', limits, authEnabled: auth.enabled });

  let log: FastifyInstance['log'] | undefined;
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    // Node's defaults let a client take 60 s (checked every 30 s) to send its headers and forever
    // to send a body; a few connections trickling bytes would then hold the gateway's sockets.
    requestTimeout: limits.requestTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: checkingInterval(limits),
      maxHeaderSize: MAX_HEADER_BYTES,
      // Checked in onRequest below instead: Node's own refusal is a bare 400, not a problem document.
      requireHostHeader: false,
    },
    // Requests Node's parser refuses (malformed, headers too large, too slow) never reach a route.
    clientErrorHandler: (error, socket) => answerClientError(error, socket, limits, log),
    // Fastify's own refusals before routing (a URL with an invalid %-escape) are bare JSON otherwise.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      const detail = error.code === 'FST_ERR_BAD_URL' ? 'the URL has an invalid %-escape' : `the request was refused before routing (${error.code})`;
      sendProblem(reply, new HttpProblem('TXGATE_INVALID_REQUEST', detail), request);
    },
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

  log = app.log;

  // Only application/json: a text/plain body must get 415, not a schema error.
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: limits.maxBodyBytes }, (request, body, done) => {
    const bytes = body as Buffer;
    // toString() would turn invalid bytes into U+FFFD and write that instead of what was sent.
    if (!isUtf8(bytes)) {
      done(new HttpProblem('TXGATE_INVALID_JSON', 'the body is not valid UTF-8, which JSON requires', { extensions: { errors: [{ pointer: '', detail: 'not valid UTF-8' }] } }), undefined);
      return;
    }
    const text = bytes.toString('utf8');
    void parseJson(request, text, (err, parsed) => {
      if (err) return done(err, undefined);
      const inexact = inexactNumbers(text, parsed);
      if (inexact.length === 0) return done(null, parsed);
      done(
        new HttpProblem('TXGATE_INVALID_REQUEST', `${inexact[0]!.pointer}: ${inexact[0]!.detail}${inexact.length > 1 ? ` (and ${inexact.length - 1} more, see "errors")` : ''}`, {
          extensions: { errors: inexact },
        }),
        undefined,
      );
    });
  });

  // Node answers an Expect other than 100-continue with a bare 417; RFC 9110 lets a server ignore it.
  app.server.on('checkExpectation', (req: IncomingMessage, res) => app.server.emit('request', req, res));
  // A CONNECT never reaches a route either: Node would drop the connection without an answer.
  app.server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    log?.info({ code: 'TXGATE_INVALID_REQUEST', reason: 'CONNECT' }, 'request refused');
    answerOnSocket(socket, new HttpProblem('TXGATE_INVALID_REQUEST', 'CONNECT is not supported: the gateway is not a proxy'), limits.lingerMs);
  });

  app.addHook('onRequest', async (request, reply) => {
    // Node starts every request of a pipeline at once. A request waits for the answers ahead of
    // it instead (RFC 9112, 9.3.2: only safe methods may run in parallel), and behind an answer
    // that closes the connection, or once the client is gone, it is not served at all (9.6).
    const socket = request.raw.socket;
    await answersAhead(socket, reply.raw);
    if (socket.destroyed || socket.writableEnded) {
      reply.hijack();
      return;
    }
    reply.header('x-request-id', request.id);
    // RFC 9112, 3.2: an HTTP/1.1 request has exactly one Host (Node keeps the first of several).
    if (request.raw.httpVersion === '1.1' && hostHeaders(request.raw.rawHeaders) !== 1) {
      throw new HttpProblem('TXGATE_INVALID_REQUEST', 'an HTTP/1.1 request needs exactly one Host header');
    }
    if (state.draining && request.url.startsWith('/v1/')) {
      throw new HttpProblem('TXGATE_SHUTTING_DOWN', 'the gateway is shutting down and takes no new transactions; retry against another instance or after the Retry-After delay', {
        headers: { 'retry-after': String(RETRY_AFTER_SHUTTING_DOWN_S), connection: 'close' },
      });
    }
    const starting = request.url.startsWith('/v1/') ? startupPending(state) : undefined;
    if (starting) {
      throw new HttpProblem(
        'TXGATE_NOT_READY',
        `the gateway is still starting (${starting.step ?? 'beginning'}) and takes no transactions yet; nothing was written, retry after the Retry-After delay`,
        { headers: { 'retry-after': String(RETRY_AFTER_STARTING_S) } },
      );
    }
  });

  app.addHook('onSend', async (request, reply) => {
    // Answered before the whole body arrived (413 by Content-Length, 401, 415...). Node reads and
    // discards the rest to keep the connection: fine for a body within the limit, but a larger or
    // unbounded (chunked) one is not worth reading; that connection ends after the response.
    if (request.raw.complete) return;
    const declared = Number(request.headers['content-length']);
    if (!(declared <= limits.maxBodyBytes)) reply.header('connection', 'close');
    // Whatever closes the connection after this response (that header, the client's own
    // "Connection: close", HTTP/1.0, shutdown), the rest of the body must not be left unread.
    lingerBeforeClosing(request.raw.socket, request.raw, limits.lingerMs);
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpMetrics.observe(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    // The path only: a query string is the client's and may carry anything, a misplaced secret included.
    const url = pathOf(request.url);
    if (reply.statusCode >= 400 && reply.statusCode < 500) {
      request.log.info({ method: request.method, url, status: reply.statusCode }, 'request refused');
    } else {
      request.log.debug({ method: request.method, url, status: reply.statusCode, ms: reply.elapsedTime }, 'request completed');
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const problem = toProblem(error, request);
    if (problem.status >= 500 && problem.status !== 503) {
      // The underlying error (with its cause chain) is for the operator; the client gets the problem only.
      request.log.error({ err: problem === error ? (problem.cause ?? error) : error, code: problem.code }, 'request failed');
    } else if (problem.code === 'TXGATE_NOT_READY') {
      // Probes and retrying clients ask while the gateway starts; start-up logs its own trouble.
      request.log.debug({ code: problem.code, reason: error.message }, 'request refused');
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
    '/problems': 'GET, HEAD',
  };
  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request.url);
    const allow = allowed[path];
    const problem = allow
      ? new HttpProblem('TXGATE_METHOD_NOT_ALLOWED', `${path} takes ${allow}, not ${request.method}`, { headers: { allow } })
      : new HttpProblem('TXGATE_NOT_FOUND', `there is no ${request.method} ${path}; the API is described at GET /openapi.json`);
    return sendProblem(reply, problem, request);
  });

  registerProblemPages(app);

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
      try {
        reachability.refuseIfUnreachable();
      } catch (err) {
        throw problemFromServiceError(err, { hadIdempotencyKey: key !== undefined });
      }
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
          // A wait also ends when Kafka turns unreachable: refused at once rather than at the acquire timeout.
          signal: AbortSignal.any([gone.signal, reachability.outage]),
        });
        if (result.replayed) reply.header('idempotent-replayed', 'true');
        return {
          status: 'committed',
          records: result.records.map((r) => ({ topic: r.topic, partition: r.partition, offset: String(r.offset) })),
        };
      } catch (err) {
        const problem = problemFromServiceError(err, { hadIdempotencyKey: key !== undefined });
        // A transaction that failed may have failed on a topic deleted meanwhile: look again next time.
        if (problem.code === 'TXGATE_TRANSACTION_ABORTED' || problem.code === 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN') deps.topics.forget(prepared.topics.keys());
        throw problem;
      } finally {
        reply.raw.off('close', onClose);
      }
    },
  );

  app.get('/healthz', async () => ({ status: 'ok' }));

  const readiness = readinessProbe(deps, state, reachability);
  app.get('/readyz', async (_request, reply) => {
    const report = await readiness();
    if (report.ready) return { status: 'ready', checks: report.checks };
    const why = report.checks.draining
      ? 'the gateway is shutting down'
      : report.checks.startup
        ? describeStartup(report.checks.startup)
        : `pool: ${report.checks.pool}; kafka: ${report.checks.kafka}`;
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
function readinessProbe(deps: GatewayDeps, state: GatewayState, reachability: KafkaReachability): () => Promise<ReadyReport> {
  const probeKafka = async (): Promise<string> => {
    const r = await reachability.check();
    return r.state === 'unreachable' ? `unreachable (${r.error})` : 'ok';
  };
  const poolStatus = (): string => {
    if (!deps.pool) return 'ok';
    const s = deps.pool.stats();
    if (s.closed) return 'closed';
    if (s.size === 0 || s.replacing >= s.size) return `no usable producer (${s.replacing} of ${s.size} being replaced)`;
    return 'ok';
  };
  return async () => {
    const startup = state.draining ? undefined : startupPending(state);
    if (startup) return { ready: false, checks: { draining: false, startup, pool: 'not checked', kafka: 'not checked' } };
    const pool = poolStatus();
    const kafkaStatus = state.draining ? 'not checked' : await probeKafka();
    const checks = { draining: state.draining, pool, kafka: kafkaStatus };
    return { ready: !state.draining && pool === 'ok' && kafkaStatus === 'ok', checks };
  };
}

/** The path of a request URL, without its query string. */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * Resolves once no response queued before `own` is left on the connection. `_httpMessage` is the
 * response the socket is writing now; Node's own server code keeps it there for that purpose.
 */
async function answersAhead(socket: Socket, own: ServerResponse): Promise<void> {
  for (;;) {
    const ahead = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!ahead || ahead === own || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        ahead.off('close', done);
        socket.off('close', done);
        resolve();
      };
      ahead.once('close', done);
      socket.once('close', done);
    });
  }
}

function hostHeaders(rawHeaders: string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === 4 && rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

/** How often Node looks for connections past headersTimeoutMs/requestTimeoutMs (its default, 30 s, would add up to 30 s). */
function checkingInterval(limits: GatewayLimits): number {
  return Math.max(10, Math.min(1_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));
}

/**
 * Closing a socket while the client is still sending makes the kernel answer its data with a
 * reset, and a client that is busy writing (Node's http, curl...) then reports EPIPE/ECONNRESET
 * and drops the response already on its way. Like nginx's lingering close: once the response is
 * written, half-close, keep reading and discarding until the request has fully arrived (or the
 * client closes), and cut the connection after lingerMs at the latest.
 */
function lingerBeforeClosing(socket: Socket, request: IncomingMessage, lingerMs: number): void {
  // Node calls destroySoon() once a response that ends the connection has been written; on a
  // connection kept alive it is never called, and the next such request installs its own.
  socket.destroySoon = function lingeringDestroySoon(this: Socket) {
    if (request.complete) return Socket.prototype.destroySoon.call(this);
    this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs).unref();
    this.once('close', () => clearTimeout(timer));
    // The rest of the body was read and discarded (Node dumps an unread body): nothing is left
    // unread that could turn the close into a reset.
    request.once('end', () => (this.writableFinished ? this.destroy() : this.once('finish', () => this.destroy())));
  };
}

/** Sockets whose client error has been answered (Node reports each further chunk of an errored parser again). */
const clientErrorsAnswered = new WeakSet<Socket>();

/**
 * The answer to a request Node's HTTP parser refused before any route saw it: malformed (bad
 * characters in a header, conflicting Content-Length and Transfer-Encoding...), headers over
 * MAX_HEADER_BYTES, or not received within the timeouts. A problem document like every other
 * refusal, then a lingering close.
 */
function answerClientError(error: ConnectionError, socket: Socket, limits: GatewayLimits, log: FastifyInstance['log'] | undefined): void {
  if (clientErrorsAnswered.has(socket)) return;
  clientErrorsAnswered.add(socket);
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || socket.destroyed) {
    socket.destroy();
    return;
  }
  let problem: HttpProblem;
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    problem = new HttpProblem(
      'TXGATE_REQUEST_TIMEOUT',
      `the request did not arrive in time: the headers must arrive within ${limits.headersTimeoutMs} ms and the whole request within ${limits.requestTimeoutMs} ms`,
    );
  } else if (error.code === 'HPE_HEADER_OVERFLOW') {
    problem = new HttpProblem('TXGATE_HEADERS_TOO_LARGE', `the request line and headers are larger than ${MAX_HEADER_BYTES} bytes`);
  } else {
    // Only the parser's reason: the error also carries the raw bytes received, credentials included.
    const parserReason = (error as { reason?: unknown }).reason;
    const reason = typeof parserReason === 'string' ? parserReason : error.code;
    problem = new HttpProblem('TXGATE_INVALID_REQUEST', `malformed HTTP request (${reason})`);
  }
  log?.info({ code: problem.code, reason: error.code }, 'request refused');
  // Node's own rule: nothing may follow a response that has started (its headers are out).
  if (!socket.writable || (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  answerOnSocket(socket, problem, limits.lingerMs);
}

/** Writes a problem response straight to a socket no route answers on, then closes it after a linger. */
function answerOnSocket(socket: Socket, problem: HttpProblem, lingerMs: number): void {
  const id = randomUUID();
  const body = JSON.stringify(problem.toDocument(`urn:uuid:${id}`));
  socket.end(
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? ''}\r\n` +
      `content-type: ${PROBLEM_CONTENT_TYPE}; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${id}\r\nconnection: close\r\n\r\n${body}`,
  );
  // Whatever the client still sends is read and dropped (by the failed parser, or here once no
  // parser is attached), so that closing does not reset the answer away; cut after lingerMs.
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), lingerMs).unref();
  socket.once('close', () => clearTimeout(timer));
}

/** A number whose JSON text does not survive parsing, in place of its value (see inexactNumbers). */
class InexactNumber {
  constructor(
    readonly source: string,
    readonly value: number,
  ) {}
}

/**
 * A number written with at most 15 digits and no exponent is exact as a double: only numbers
 * (after ":", "[" or ",") that are longer or have an exponent need a look. Not base64 text, say.
 */
const MAYBE_INEXACT = /[:,[]\s*-?(?:\d[\d.]{15}|[\d.]+[eE])/;

/**
 * The numbers in a JSON body that a double cannot hold (12345678901234567890, 1e400, 1e-400):
 * written back, they would be another number (12345678901234567000, null, 0), silently. Each
 * with a JSON Pointer. Needs the source text that JSON.parse passes revivers (Node 22+).
 */
function inexactNumbers(text: string, parsed: unknown): FieldError[] {
  if (!MAYBE_INEXACT.test(text)) return [];
  // The reviver recurses once per level; a document this deep is refused for its depth anyway.
  if (jsonDepth(parsed, MAX_VALUE_DEPTH + 3) > MAX_VALUE_DEPTH + 3) return [];
  let found = false;
  const revived: unknown = JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) => {
    if (typeof value !== 'number' || context?.source === undefined || sameNumber(context.source, value)) return value;
    found = true;
    return new InexactNumber(context.source, value);
  });
  if (!found) return [];
  const errors: FieldError[] = [];
  const stack: Array<[unknown, string]> = [[revived, '']];
  while (stack.length > 0 && errors.length < MAX_REPORTED_FIELD_ERRORS) {
    const [value, pointer] = stack.pop()!;
    if (value instanceof InexactNumber) {
      const shown = value.source.length > 40 ? `${value.source.slice(0, 37)}...` : value.source;
      errors.push({
        pointer,
        detail: `the number ${shown} has no exact double-precision form and would be written as ${JSON.stringify(value.value)}; send it as a string, or the record value as valueBase64`,
      });
    } else if (value !== null && typeof value === 'object') {
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
      // Reversed onto the stack so the errors come out in document order.
      for (let i = entries.length - 1; i >= 0; i--) stack.push([entries[i]![1], `${pointer}/${escapePointerToken(entries[i]![0])}`]);
    }
  }
  return errors;
}

/** Whether a JSON number's text and the double it parsed to denote the same decimal number. */
function sameNumber(source: string, value: number): boolean {
  return Number.isFinite(value) && decimalForm(source) === decimalForm(String(value));
}

/** sign, significant digits and exponent ("-12e3" for -12000, -12e3 or -12.000e3), or the text itself if it is no decimal. */
function decimalForm(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return text;
  const fraction = m[3] ?? '';
  const digits = m[2]! + fraction;
  // Loops, not /0+$/: that regex backtracks quadratically over a long run of zeros.
  let first = 0;
  while (first < digits.length && digits.charCodeAt(first) === 48) first++;
  if (first === digits.length) return '0';
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 48) end--;
  return `${m[1]}${digits.slice(first, end)}e${Number(m[4] ?? 0) - fraction.length + (digits.length - end)}`;
}
