/**
 * The HTTP layer: a Fastify instance that turns each POST /v1/transactions into one
 * TransactionService.submit(), plus health, readiness, metrics and the OpenAPI document.
 * Everything it needs is injected, so tests drive it with fastify.inject() or a real listen().
 * This file builds the instance and registers the parts listed in GATEWAY_PARTS; each part is
 * one module with one job.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { DEFAULT_GATEWAY_LIMITS, DEFAULT_IDEMPOTENCY_TOPIC, MAX_HEADER_BYTES, type GatewayLimits } from '../defaults.js';
import { KafkaReachability } from '../service/kafka-reachability.js';
import { ApiKeyAuthenticator } from './auth.js';
import { answerClientError, checkingInterval, registerConnectionGuards } from './client-errors.js';
import { registerDashboard } from './dashboard/dashboard.js';
import { GatewayState, type GatewayContext, type GatewayDeps, type GatewayPart } from './context.js';
import { answerFrameworkError, registerErrorHandler } from './error-handler.js';
import { registerJsonBody } from './json-body.js';
import { registerHttpMetrics, registerServiceMetrics } from './metrics.js';
import { registerNotFound } from './not-found.js';
import { registerProblemPages } from './problem-pages.js';
import { registerRequestHooks } from './request-hooks.js';
import { registerOperationsRoutes } from './routes/operations.js';
import { registerTransactionRoutes } from './routes/transactions.js';
import { registerTracing } from './tracing.js';

export { GatewayState, type GatewayDeps, type GatewayService } from './context.js';
export { RETRY_AFTER_KAFKA_UNAVAILABLE_S, RETRY_AFTER_SATURATED_S, RETRY_AFTER_SHUTTING_DOWN_S, RETRY_AFTER_STARTING_S } from './error-mapping.js';

/**
 * Everything the gateway serves, in registration order: a new feature is one more entry.
 * Hooks and handlers come before the routes (not-found collects each route's methods as it is added).
 */
const GATEWAY_PARTS: readonly GatewayPart[] = [
  registerTracing, // the span of each POST /v1/transactions, first so that it covers every other hook
  registerJsonBody, // application/json bodies, UTF-8, exact numbers
  registerConnectionGuards, // CONNECT, Expect, lingering close of unread bodies
  registerRequestHooks, // pipelining order, Host, draining and starting refusals, logs and metrics
  registerErrorHandler, // every failure as a problem document
  registerNotFound, // 404 and 405
  registerProblemPages, // GET /problems[/:slug]
  registerTransactionRoutes, // POST /v1/transactions
  registerOperationsRoutes, // /healthz, /readyz, /metrics, /openapi.json
  registerDashboard, // GET / and /dashboard (the live page), GET /v1/stats
];

export function buildGateway(deps: GatewayDeps): FastifyInstance {
  const limits: GatewayLimits = { ...DEFAULT_GATEWAY_LIMITS, ...deps.limits };
  const registry = deps.registry ?? new Registry();
  const internal = new Set(deps.internalTopics ?? [DEFAULT_IDEMPOTENCY_TOPIC]);
  const ctx: GatewayContext = {
    deps,
    limits,
    state: deps.state ?? new GatewayState(),
    registry,
    auth: new ApiKeyAuthenticator(deps.apiKeys ?? []),
    reachability: new KafkaReachability((timeoutMs) => deps.topics.ping(timeoutMs), {
      ...(deps.readiness?.cacheMs !== undefined ? { cacheMs: deps.readiness.cacheMs } : {}),
      ...(deps.readiness?.timeoutMs !== undefined ? { timeoutMs: deps.readiness.timeoutMs } : {}),
    }),
    httpMetrics: registerHttpMetrics(registry),
    isInternalTopic: (topic) => internal.has(topic) || topic.startsWith('__'),
  };
  registerServiceMetrics(registry, () => deps.service.stats());

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
      // Checked in request-hooks.ts instead: Node's own refusal is a bare 400, not a problem document.
      requireHostHeader: false,
    },
    // Requests Node's parser refuses (malformed, headers too large, too slow) never reach a route.
    clientErrorHandler: (error, socket) => answerClientError(error, socket, limits, log),
    frameworkErrors: answerFrameworkError,
    genReqId: () => randomUUID(),
    // Per-request lines are ours (request-hooks.ts): debug for successes, info for refusals.
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

  for (const register of GATEWAY_PARTS) register(app, ctx);
  return app;
}
