/**
 * Runs the gateway for real: HTTP listener -> pool -> TransactionService, and the reverse on
 * shutdown. The listener comes up first, so that while start-up retries what needs the cluster
 * (startup.ts) /healthz answers, /readyz says which step start-up is at and why, and transactions
 * get 503 with Retry-After. Shutdown is graceful: readiness turns 503 at once, new transactions
 * are refused, requests already accepted finish (their transactions commit or abort) within the
 * deadline, then the service, the pool and the metadata client close. Closing while still
 * starting stops start-up first. The composition root: the one place that wires the layers to the
 * Kafka adapters (run.ts adds the process: signals and exit code).
 */
import type { FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { PoolClosedError } from '../errors.js';
import { TransactionalProducerPool } from '../pool/pool.js';
import { combineEvents, createPoolMetrics } from '../pool/metrics.js';
import type { PoolEvents, RunOptions, Transaction } from '../pool/types.js';
import type { ProducerFactory } from '../pool/producer-port.js';
import { createConfluentProducerFactory } from '../kafka/confluent-producer.js';
import { assertThreadPoolFits } from '../kafka/thread-pool.js';
import { TransactionService } from './service/transaction-service.js';
import { buildGateway, GatewayState, type GatewayService } from './http/app.js';
import type { GatewayConfig } from './config.js';
import type { TransactionRunner } from './group-commit/participant.js';
import { DEFAULT_START_TIMEOUT_MS } from './defaults.js';
import { describeError, GatewayStartError, retryStep, StartupTracker, type StartContext, type StartupStatus } from './startup.js';
import { createKafkaTopicMetadataSource } from '../kafka/topic-metadata.js';
import { TopicCatalog, type TopicMetadataSource } from './service/topic-catalog.js';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { startTracing } from './tracing.js';

/** What the gateway needs of its transaction service: TransactionService, or a test's stand-in. */
export interface StartableService extends GatewayService {
  /** Retries its own Kafka steps until ctx.deadline; stops when ctx.signal aborts. */
  start(ctx: StartContext): Promise<void>;
  close(opts?: { timeoutMs?: number }): Promise<void>;
}

export interface StartGatewayOptions {
  /** Replaces the Kafka producer factory (tests that inject failures). */
  producerFactory?: ProducerFactory;
  /** Replaces the Kafka metadata source. */
  topicSource?: TopicMetadataSource;
  /** Replaces the TransactionService (tests without a broker); `pool` lends from the started pool. */
  service?: (pool: TransactionRunner) => StartableService;
  version?: string;
  /** Tracing on, with spans handed to this exporter as they end (tests: an InMemorySpanExporter), besides any configured one. */
  spanExporter?: SpanExporter;
  /**
   * Default true: resolve once the gateway is ready, reject when start-up gives up (the gateway
   * has then closed itself). false: resolve as soon as the listener is up, so that the caller can
   * close() during start-up (on a signal, say); `ready` tells how start-up ends.
   */
  waitUntilReady?: boolean;
}

export interface RunningGateway {
  app: FastifyInstance;
  /** http://host:port actually bound (port 0 resolved). */
  url: string;
  state: GatewayState;
  /** The producer pool: a pool whose start failed is replaced by a new one, so read it when needed. */
  readonly pool: TransactionalProducerPool;
  service: StartableService;
  /**
   * Settles with start-up: resolves once ready; rejects with GatewayStartError when start-up gave
   * up (naming the step and its last error; the gateway has closed itself), or with
   * PoolClosedError when close() came first.
   */
  ready: Promise<void>;
  /** Start-up's progress, as /readyz shows it. */
  startup(): StartupStatus;
  /**
   * Graceful shutdown within config.shutdownTimeoutMs. Resolves true when everything in flight
   * finished before the deadline, false when the deadline cut something short. Idempotent; works
   * while still starting too (start-up stops at its next step or retry).
   */
  close(): Promise<boolean>;
  /** Where shutdown is (for the watchdog's message). */
  shutdownStep(): string;
}

type Logger = FastifyInstance['log'];

function poolLogEvents(log: () => Logger): PoolEvents {
  return {
    replacing: ({ slot, transactionalId, cause, error }) =>
      log().warn({ slot, transactionalId, cause, err: error }, 'replacing a producer'),
    replaced: ({ slot, transactionalId, cause }) => log().info({ slot, transactionalId, cause }, 'producer replaced'),
    fencingStorm: ({ slot, transactionalId, fencings, delayMs }) =>
      log().error(
        { slot, transactionalId, fencings, delayMs },
        'this producer keeps being fenced: another running gateway uses the same transactional ids; give every instance its own --instance-id',
      ),
    outcomeUnknown: ({ slot, reason }) => log().error({ slot, err: reason }, 'transaction outcome unknown'),
    aborted: ({ slot, reason }) => log().warn({ slot, err: reason }, 'transaction aborted'),
  };
}

export async function startGateway(config: GatewayConfig, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  // The idempotency store's two tailing consumers each keep a libuv thread busy in consume(),
  // beside one per producer blocked in a transactional call.
  if (!options.producerFactory) assertThreadPoolFits(config.pool.size + 2);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const poolMetrics = createPoolMetrics(registry);
  const state = new GatewayState();
  const startTimeoutMs = config.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const tracker = new StartupTracker(startTimeoutMs);
  state.startup = tracker;
  // The app (and its logger) is built after the pool and service exist; they log through it.
  let app: FastifyInstance | undefined;
  const log = (): Logger => {
    if (!app) throw new Error('logger used before the gateway was built');
    return app.log;
  };
  // Before anything makes spans. Off (undefined) unless configured: nothing is loaded or registered then.
  const tracing = await startTracing(config.tracing ?? {}, {
    ...(options.spanExporter ? { exporter: options.spanExporter } : {}),
    serviceVersion: options.version ?? '0.1.0',
    instanceId: config.pool.instanceId,
    maxLinksPerSpan: config.groupCommit.maxBatchRequests,
    logger: { warn: (obj, msg) => app?.log.warn(obj, msg) },
  });

  const producerFactory = options.producerFactory ?? createConfluentProducerFactory(config.kafka);
  // A pool whose start failed has closed itself for good: each retry makes a new one (same ids).
  const newPool = () =>
    new TransactionalProducerPool({
      producerFactory,
      size: config.pool.size,
      instanceId: config.pool.instanceId,
      transactionalIdPrefix: config.pool.transactionalIdPrefix,
      maxWaiting: config.pool.maxWaiting,
      acquireTimeoutMs: config.pool.acquireTimeoutMs,
      commitTimeoutMs: config.pool.commitTimeoutMs,
      ...(config.pool.retryDeadlineMs !== undefined ? { retry: { deadlineMs: config.pool.retryDeadlineMs } } : {}),
      events: combineEvents(poolMetrics.events, poolLogEvents(log)),
    });
  let pool = newPool();
  const runner: TransactionRunner = {
    run<T>(work: (tx: Transaction) => Promise<T>, opts?: RunOptions) {
      return pool.run(work, opts);
    },
  };
  const serviceLogger = {
    info: (obj: object, msg?: string) => log().info(obj, msg),
    warn: (obj: object, msg?: string) => log().warn(obj, msg),
    error: (obj: object, msg?: string) => log().error(obj, msg),
  };
  const service: StartableService =
    options.service?.(runner) ??
    new TransactionService({
      pool: runner,
      kafka: config.kafka,
      idempotencyTopic: config.idempotencyTopic,
      idempotencyRetentionMs: config.idempotencyRetentionMs,
      maxBatchRequests: config.groupCommit.maxBatchRequests,
      maxBatchRecords: config.groupCommit.maxBatchRecords,
      maxBatchBytes: config.groupCommit.maxBatchBytes,
      logger: serviceLogger,
    });
  const topics = new TopicCatalog(options.topicSource ?? createKafkaTopicMetadataSource(config.kafka, { probeTopic: config.idempotencyTopic }));

  app = buildGateway({
    service,
    topics,
    pool: { stats: () => pool.stats() },
    state,
    registry,
    apiKeys: config.apiKeys,
    limits: config.limits,
    internalTopics: [config.idempotencyTopic],
    logger: { level: config.logLevel },
    version: options.version ?? '0.1.0',
  });
  const built = app;

  // While draining, every response closes its connection, so the listener's close() does not
  // wait on keep-alive connections that would otherwise stay open.
  built.addHook('onSend', async (_request, reply) => {
    if (state.draining) reply.header('connection', 'close');
  });

  try {
    await built.listen({ host: config.http.host, port: config.http.port });
  } catch (err) {
    // Nothing was started yet: closing releases the clients made so far.
    await service.close({ timeoutMs: 5_000 }).catch(() => {});
    await pool.close({ timeoutMs: 5_000 }).catch(() => {});
    await topics.close().catch(() => {});
    await built.close().catch(() => {});
    await tracing?.shutdown(1_000);
    throw err;
  }
  const address = built.server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;
  const url = `http://${host}:${port}`;
  built.log.info({ url, startTimeoutMs }, 'txgate gateway listening; starting up (GET /readyz tells how far)');
  if (tracing) built.log.info({ exporters: tracing.description }, 'tracing POST /v1/transactions');

  const stopStartup = new AbortController();
  const ctx = tracker.context(stopStartup.signal, { warn: (obj, msg) => built.log.warn(obj, msg) });
  const work = (async () => {
    built.log.info({ brokers: config.kafka['bootstrap.servers'], poolSize: config.pool.size, instanceId: config.pool.instanceId }, 'starting the producer pool');
    await retryStep(ctx, 'starting the producer pool (initialising its transactional producers)', async () => {
      if (pool.stats().closed) pool = newPool();
      await pool.start();
    });
    poolMetrics.observe(pool);
    await service.start(ctx);
  })();
  const settled = work.then(
    () => {},
    () => {},
  );

  let closing: Promise<boolean> | undefined;
  let step = 'starting';
  const close = (): Promise<boolean> => {
    closing ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      const remaining = () => Math.max(0, deadline - Date.now());
      state.draining = true;
      if (!tracker.done) {
        // A step in progress ends within its own timeout; none is retried after this.
        step = 'stopping start-up';
        built.log.info({ at: tracker.status().step }, 'closing while starting: stopping start-up');
        stopStartup.abort();
        await settled;
      }
      step = 'closing the HTTP listener';
      built.log.info({ timeoutMs: config.shutdownTimeoutMs }, 'shutting down: finishing in-flight requests');
      const httpClosed = built.close().then(() => true);
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([httpClosed, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), remaining())))]);
      clearTimeout(timer);
      if (!inTime) {
        built.log.warn('shutdown deadline reached with requests still in flight; closing their connections');
        built.server.closeAllConnections();
      }
      let clean = inTime;
      // Each part gets what is left of the deadline (at least 1 s); a failure is logged and the rest still close.
      for (const [what, part] of [
        ['the transaction service', service],
        ['the producer pool', pool],
      ] as const) {
        step = `closing ${what}`;
        try {
          await part.close({ timeoutMs: Math.max(remaining(), 1_000) });
        } catch (err) {
          clean = false;
          built.log.error({ err }, `closing ${what} failed`);
        }
      }
      step = 'closing the metadata client';
      await topics.close().catch(() => {});
      if (!inTime) await httpClosed.catch(() => {});
      // Last, so that the spans of the requests drained above are exported too.
      step = 'exporting the last spans';
      await tracing?.shutdown(Math.max(remaining(), 1_000));
      step = 'stopped';
      built.log.info({ clean }, 'gateway stopped');
      return clean;
    })();
    return closing;
  };

  const ready = work.then(
    () => {
      if (closing) throw new PoolClosedError('the gateway was closed before it was ready');
      tracker.ready();
      step = 'running';
      built.log.info(
        { url, auth: config.apiKeys.length > 0 ? `${config.apiKeys.length} API keys` : 'off', startupMs: Date.now() - tracker.startedAt },
        'txgate gateway ready',
      );
    },
    async (err: unknown) => {
      if (closing) throw new PoolClosedError('the gateway was closed before it was ready');
      const failure = startFailure(err, tracker, startTimeoutMs);
      tracker.failed(failure);
      built.log.error({ step: failure.step, attempts: failure.attempts, err: describeError(failure.lastError) }, `start-up failed: ${failure.message}`);
      await close();
      throw failure;
    },
  );
  // The caller may never look at `ready` (waitUntilReady: false, then close()).
  ready.catch(() => {});

  const gateway: RunningGateway = {
    app: built,
    url,
    state,
    get pool() {
      return pool;
    },
    service,
    ready,
    startup: () => tracker.status(),
    close,
    shutdownStep: () => step,
  };
  if (options.waitUntilReady !== false) await ready;
  return gateway;
}

/** The error start-up ends with: it names the step and the last error, and the setting when the deadline passed. */
function startFailure(err: unknown, tracker: StartupTracker, startTimeoutMs: number): GatewayStartError {
  const status = tracker.status();
  const stepName = err instanceof GatewayStartError ? err.step : (status.step ?? 'starting');
  const attempts = err instanceof GatewayStartError ? err.attempts : status.attempts + 1;
  const lastError = err instanceof GatewayStartError ? err.lastError : err;
  if (err instanceof GatewayStartError && !err.gaveUp) return err;
  const detail = err instanceof GatewayStartError ? err.message : `${stepName} failed: ${describeError(err)}`;
  const atDeadline = Date.now() >= tracker.deadline - 1_000;
  return new GatewayStartError(
    stepName,
    attempts,
    lastError,
    atDeadline,
    atDeadline ? `start-up did not finish within ${startTimeoutMs} ms (--start-timeout-ms / TXGATE_START_TIMEOUT_MS): ${detail}` : detail,
  );
}
