/**
 * The pool's Prometheus series that operators alert on: failed producer initialisations, fencing
 * storms, each slot's time in its state, and the wait queue's bound.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Registry } from 'prom-client';
import { createPoolMetrics } from '../../src/pool/metrics.js';
import { FakeCluster, kafkaErrors, rec, startPool } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const v = metric?.values.find((x) => Object.entries(labels).every(([k, l]) => String(x.labels[k]) === l));
  return v?.value;
}

it('counts failed initialisations, reports a replacing slot with its time in that state, and exports the wait bound', async () => {
  const registry = new Registry();
  const metrics = createPoolMetrics(registry);
  const cluster = new FakeCluster();
  const pool = await startPool(cluster, { size: 1, maxWaiting: 7, events: metrics.events });
  metrics.observe(pool);
  try {
    assert.equal(await value(registry, 'txgate_pool_max_waiting'), 7);
    assert.equal(await value(registry, 'txgate_pool_slot_state_seconds', { slot: '0', state: 'idle' }) !== undefined, true);
    // The slot is fenced; its replacement's init is held, so the slot stays replacing.
    cluster.fence('tx-i1-0');
    const init = cluster.hold('init');
    await assert.rejects(pool.run((tx) => tx.send(rec('fenced'))));
    const held = await init.next();
    assert.ok((await value(registry, 'txgate_pool_slot_state_seconds', { slot: '0', state: 'replacing' }))! >= 0);
    assert.equal(await value(registry, 'txgate_pool_slot_state_seconds', { slot: '0', state: 'idle' }), undefined, 'one series per slot, in its current state');
    // That init fails once, then the next one succeeds.
    held.fail(kafkaErrors.timedOut('init'));
    init.stop();
    await waitFor(async () => (await value(registry, 'txgate_pool_init_failures_total')) === 1, { ...ON_FAKES, what: 'the failed init counted' });
    await waitFor(() => pool.stats().idle === 1, { ...ON_FAKES, timeoutMs: 5_000, what: 'the slot back' });
    assert.equal(await value(registry, 'txgate_pool_fencing_storms_total'), 0);
  } finally {
    await pool.close();
  }
});
