/**
 * What the gateway's HTTP parts share: the dependencies buildGateway is given, and what it makes
 * of them once (limits, authentication, Kafka reachability, metrics), so each part is a plain
 * function of the Fastify instance and this context.
 */
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { Registry } from 'prom-client';
import type { OutgoingRecord, RecordMetadata } from '../../pool/producer-port.js';
import type { PoolStats } from '../../pool/types.js';
import type { GatewayLimits } from '../defaults.js';
import type { KafkaReachability } from '../service/kafka-reachability.js';
import type { TopicCatalog } from '../service/topic-catalog.js';
import type { StartupStatus } from '../startup.js';
import type { ApiKeyAuthenticator, ApiKeySpec } from './auth.js';
import type { HttpMetrics, ServiceStats } from './metrics.js';

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

export interface GatewayContext {
  deps: GatewayDeps;
  limits: GatewayLimits;
  state: GatewayState;
  registry: Registry;
  auth: ApiKeyAuthenticator;
  reachability: KafkaReachability;
  httpMetrics: HttpMetrics;
  isInternalTopic(topic: string): boolean;
}

/** One part of the gateway (routes, hooks, handlers), registered on the instance in app.ts's list. */
export type GatewayPart = (app: FastifyInstance, ctx: GatewayContext) => void;
