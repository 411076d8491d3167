/**
 * A complete GatewayConfig for tests that start a gateway in-process, with the gateway's own
 * defaults and test-sized pools and timeouts; each test overrides what it is about.
 */
import type { GatewayConfig } from '../../src/gateway/config.js';
import {
  DEFAULT_GATEWAY_LIMITS,
  DEFAULT_IDEMPOTENCY_TOPIC,
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_BATCH_RECORDS,
  DEFAULT_MAX_BATCH_REQUESTS,
} from '../../src/gateway/defaults.js';

export type GatewayConfigOverrides = Partial<Omit<GatewayConfig, 'pool'>> & { pool?: Partial<GatewayConfig['pool']> };

export function testGatewayConfig(over: GatewayConfigOverrides = {}): GatewayConfig {
  const { pool, ...rest } = over;
  return {
    kafka: { 'bootstrap.servers': '127.0.0.1:1' },
    pool: { size: 2, maxWaiting: 64, acquireTimeoutMs: 5_000, instanceId: 'test', transactionalIdPrefix: 'txgate-test', ...pool },
    http: { host: '127.0.0.1', port: 0, allowInsecureBind: false },
    limits: DEFAULT_GATEWAY_LIMITS,
    apiKeys: [],
    groupCommit: { maxBatchRequests: DEFAULT_MAX_BATCH_REQUESTS, maxBatchRecords: DEFAULT_MAX_BATCH_RECORDS, maxBatchBytes: DEFAULT_MAX_BATCH_BYTES },
    idempotencyTopic: DEFAULT_IDEMPOTENCY_TOPIC,
    shutdownTimeoutMs: 5_000,
    logLevel: 'silent',
    ...rest,
  };
}
