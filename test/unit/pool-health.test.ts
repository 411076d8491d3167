// Health: idle slots are refreshed before their transactional id can expire; broken slots come back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TransactionError } from '../../src/errors.js';
import type { ReplaceCause } from '../../src/pool/types.js';
import { deferred, FakeCluster, kafkaErrors, rec, startPool } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

describe('pool health', () => {
  it('re-initialises a slot idle past refreshIdleAfterMs with the same id, never a busy one', async () => {
    const cluster = new FakeCluster();
    const replaced: Array<{ slot: number; cause: ReplaceCause }> = [];
    const pool = await startPool(cluster, {
      size: 2,
      refreshIdleAfterMs: 30,
      healthCheckIntervalMs: 5,
      events: { replaced: ({ slot, cause }) => replaced.push({ slot, cause }) },
    });
    const gate = deferred();
    let busySlot = -1;
    const busy = pool.run(async (tx) => {
      busySlot = tx.slot;
      await tx.send(rec('long'));
      await gate.promise;
    });
    await waitFor(() => busySlot >= 0, { ...ON_FAKES, what: 'one slot busy' });
    const idleId = `tx-i1-${1 - busySlot}`;
    const busyId = `tx-i1-${busySlot}`;
    await waitFor(() => cluster.created(idleId) >= 3, { ...ON_FAKES, what: 'the idle slot refreshed twice' });
    assert.equal(cluster.created(busyId), 1, 'the busy slot was refreshed under its transaction');
    assert.ok(replaced.every((r) => r.cause === 'refresh' && r.slot === 1 - busySlot));
    assert.deepEqual(cluster.ids().sort(), ['tx-i1-0', 'tx-i1-1'], 'refresh keeps the ids');
    const older = cluster.producers(idleId).slice(0, -1);
    await waitFor(() => older.every((p) => p.closed), { ...ON_FAKES, what: 'refreshed-away producers are closed' });
    gate.resolve();
    await busy;
    assert.deepEqual(cluster.committedValues(), ['long']);
    // Refreshed slots keep serving.
    await pool.run((tx) => tx.send(rec('after')));
    await pool.close();
    assert.deepEqual(cluster.violations, []);
  });

  it('a replacement whose factory throws is retried', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, replaceBackoffMs: 2 });
    cluster.failNextCreate(() => new Error('cannot create producer'), { times: 2 });
    cluster.failNext('commit', kafkaErrors.fenced);
    await assert.rejects(pool.run((tx) => tx.send(rec('a'))), TransactionError);
    await waitFor(() => pool.stats().slots[0]?.state === 'idle', { ...ON_FAKES, what: 'slot back after the factory failed twice' });
    assert.equal(cluster.created('tx-i1-0'), 2);
    await pool.run((tx) => tx.send(rec('b')));
    assert.deepEqual(cluster.committedValues(), ['b']);
    await pool.close();
    assert.ok(cluster.producers().every((p) => p.closed));
    assert.deepEqual(cluster.violations, []);
  });

  it('stats() report the last error of a slot that is replacing', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const init = cluster.hold('init', { producer: 2 });
    cluster.failNext('commit', kafkaErrors.fenced);
    await assert.rejects(pool.run((tx) => tx.send(rec('a'))), TransactionError);
    const held = await init.next();
    const slot = pool.stats().slots[0];
    assert.equal(slot?.state, 'replacing');
    assert.match(slot?.lastError ?? '', /FENCED/);
    held.release();
    await waitFor(() => pool.stats().slots[0]?.state === 'idle', { ...ON_FAKES, what: 'slot back' });
    await pool.close();
  });
});
