/**
 * Readiness: not draining, start-up done, the pool can lend a producer, and a broker answered a
 * metadata request recently. GET /readyz reports it; transactions are refused while starting.
 */
import type { StartupStatus } from '../startup.js';
import type { GatewayContext, GatewayState } from './context.js';

export interface ReadyReport {
  ready: boolean;
  /** startup only while the gateway is starting (pool and kafka are then not checked). */
  checks: { draining: boolean; startup?: StartupStatus; pool: string; kafka: string };
}

/** Start-up's status while it is not done (undefined once the gateway is ready). */
export function startupPending(state: GatewayState): StartupStatus | undefined {
  const status = state.startup?.status();
  return status && status.state !== 'ready' ? status : undefined;
}

export function describeStartup(s: StartupStatus): string {
  if (s.state === 'failed') return `start-up failed: ${s.failure ?? 'unknown error'}`;
  const at = s.step ? `${s.step} (since ${s.stepSince})` : 'beginning';
  const failing = s.lastError !== undefined ? `, ${s.attempts} failed attempt${s.attempts === 1 ? '' : 's'}, last error at ${s.lastErrorAt}: ${s.lastError}` : '';
  return `starting up: ${at}${failing}; start-up gives up at ${s.deadline}`;
}

/** Why a report is not ready, in one line for the problem's detail. */
export function describeNotReady(checks: ReadyReport['checks']): string {
  if (checks.draining) return 'the gateway is shutting down';
  if (checks.startup) return describeStartup(checks.startup);
  return `pool: ${checks.pool}; kafka: ${checks.kafka}`;
}

export function readinessProbe({ deps, state, reachability }: GatewayContext): () => Promise<ReadyReport> {
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
