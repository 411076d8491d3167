/**
 * Runs the gateway for real: pool -> TransactionService -> HTTP listener, and the reverse on
 * shutdown. Shutdown is graceful: readiness turns 503 at once, new transactions are refused,
 * requests already accepted finish (their transactions commit or abort) within the deadline, then
 * the service, the pool and the metadata client close.
 */
import type { FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { TransactionalProducerPool } from '../pool/pool.js';
import { combineEvents, createPoolMetrics } from '../pool/metrics.js';
import type { PoolEvents } from '../pool/types.js';
import type { ProducerFactory } from '../pool/producer-port.js';
import { createConfluentProducerFactory } from '../kafka/confluent-producer.js';
import { assertThreadPoolFits } from '../kafka/thread-pool.js';
import { TransactionService } from './transaction-service.js';
import { buildGateway, GatewayState } from './app.js';
import type { GatewayConfig } from './config.js';
import { createKafkaTopicMetadataSource, TopicCatalog, type TopicMetadataSource } from './topic-catalog.js';

export interface StartGatewayOptions {
  /** Replaces the Kafka producer factory (tests that inject failures). */
  producerFactory?: ProducerFactory;
  /** Replaces the Kafka metadata source. */
  topicSource?: TopicMetadataSource;
  version?: string;
}

export interface RunningGateway {
  app: FastifyInstance;
  /** http://host:port actually bound (port 0 resolved). */
  url: string;
  state: GatewayState;
  pool: TransactionalProducerPool;
  service: TransactionService;
  /**
   * Graceful shutdown within config.shutdownTimeoutMs. Resolves true when everything in flight
   * finished before the deadline, false when the deadline cut something short. Idempotent.
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
  // The app (and its logger) is built after the pool and service exist; they log through it.
  let app: FastifyInstance | undefined;
  const log = (): Logger => {
    if (!app) throw new Error('logger used before the gateway was built');
    return app.log;
  };

  const pool = new TransactionalProducerPool({
    producerFactory: options.producerFactory ?? createConfluentProducerFactory(config.kafka),
    size: config.pool.size,
    instanceId: config.pool.instanceId,
    transactionalIdPrefix: config.pool.transactionalIdPrefix,
    maxWaiting: config.pool.maxWaiting,
    acquireTimeoutMs: config.pool.acquireTimeoutMs,
    commitTimeoutMs: config.pool.commitTimeoutMs,
    ...(config.pool.retryDeadlineMs !== undefined ? { retry: { deadlineMs: config.pool.retryDeadlineMs } } : {}),
    events: combineEvents(poolMetrics.events, poolLogEvents(log)),
  });
  poolMetrics.observe(pool);
  const service = new TransactionService({
    pool,
    kafka: config.kafka,
    idempotencyTopic: config.idempotencyTopic,
    idempotencyRetentionMs: config.idempotencyRetentionMs,
    maxBatchRequests: config.groupCommit.maxBatchRequests,
    maxBatchRecords: config.groupCommit.maxBatchRecords,
    logger: {
      info: (obj, msg) => log().info(obj, msg),
      warn: (obj, msg) => log().warn(obj, msg),
      error: (obj, msg) => log().error(obj, msg),
    },
  });
  const topics = new TopicCatalog(options.topicSource ?? createKafkaTopicMetadataSource(config.kafka, { probeTopic: config.idempotencyTopic }));

  app = buildGateway({
    service,
    topics,
    pool,
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

  let started = 0;
  try {
    built.log.info({ brokers: config.kafka['bootstrap.servers'], poolSize: config.pool.size, instanceId: config.pool.instanceId }, 'starting the producer pool');
    await pool.start();
    started = 1;
    await service.start();
    started = 2;
    await built.listen({ host: config.http.host, port: config.http.port });
  } catch (err) {
    if (started >= 2) await service.close({ timeoutMs: 5_000 }).catch(() => {});
    if (started >= 1) await pool.close({ timeoutMs: 5_000 }).catch(() => {});
    await topics.close().catch(() => {});
    await built.close().catch(() => {});
    throw err;
  }
  const address = built.server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;
  const url = `http://${host}:${port}`;
  built.log.info({ url, auth: config.apiKeys.length > 0 ? `${config.apiKeys.length} API keys` : 'off' }, 'txgate gateway ready');

  let closing: Promise<boolean> | undefined;
  let step = 'running';
  const close = (): Promise<boolean> => {
    closing ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      const remaining = () => Math.max(0, deadline - Date.now());
      step = 'closing the HTTP listener';
      state.draining = true;
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
      step = 'closing the transaction service';
      try {
        await service.close({ timeoutMs: Math.max(remaining(), 1_000) });
      } catch (err) {
        clean = false;
        built.log.error({ err }, 'closing the transaction service failed');
      }
      step = 'closing the producer pool';
      try {
        await pool.close({ timeoutMs: Math.max(remaining(), 1_000) });
      } catch (err) {
        clean = false;
        built.log.error({ err }, 'closing the producer pool failed');
      }
      step = 'closing the metadata client';
      await topics.close().catch(() => {});
      if (!inTime) await httpClosed.catch(() => {});
      step = 'stopped';
      built.log.info({ clean }, 'gateway stopped');
      return clean;
    })();
    return closing;
  };

  return { app: built, url, state, pool, service, close, shutdownStep: () => step };
}

/**
 * Starts the gateway and shuts it down on SIGTERM or SIGINT. Sets process.exitCode: 0 after a
 * clean drain, 1 if the deadline cut in-flight work short. A second signal exits at once.
 */
export async function runGateway(config: GatewayConfig, options: StartGatewayOptions = {}): Promise<void> {
  const gateway = await startGateway(config, options);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      const force = (second: NodeJS.Signals) => {
        gateway.app.log.warn({ signal: second }, 'second signal: exiting without waiting');
        process.exit(1);
      };
      process.once('SIGTERM', force);
      process.once('SIGINT', force);
      gateway.app.log.info({ signal }, 'signal received');
      // Every step has its own deadline; this catches a step that ignores it (e.g. a native call
      // that never returns), so a stuck shutdown still ends and says where it stuck.
      const watchdog = setTimeout(() => {
        gateway.app.log.error({ step: gateway.shutdownStep() }, 'shutdown did not finish in time; exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs + 15_000);
      gateway.close().then(
        (clean) => {
          clearTimeout(watchdog);
          process.exitCode = clean ? 0 : 1;
          process.off('SIGTERM', force);
          process.off('SIGINT', force);
          resolve();
        },
        (err: unknown) => {
          clearTimeout(watchdog);
          gateway.app.log.error({ err }, 'shutdown failed');
          process.exitCode = 1;
          resolve();
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
