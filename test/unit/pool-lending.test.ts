// Exclusive lending and the bounded, fair wait for a producer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AcquireAbortedError, AcquireTimeoutError, PoolSaturatedError } from '../../src/errors.js';
import type { Transaction } from '../../src/pool/types.js';
import { deferred, FakeCluster, flush, rec, startPool, track, type Deferred } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

/** Work that records when it starts and runs until the test opens its gate. */
function gatedWork(name: string, log: string[], gate: Deferred<void>) {
  return async (tx: Transaction) => {
    log.push(name);
    await tx.send(rec(name));
    await gate.promise;
    return name;
  };
}

describe('exclusive lending', () => {
  it('never lends one producer to two callers at once, and uses every producer', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 3 });
    const active = new Map<number, number>();
    const overlaps: string[] = [];
    let maxConcurrent = 0;
    let concurrent = 0;
    const gates = Array.from({ length: 12 }, () => deferred());
    const runs = gates.map((gate, i) =>
      pool.run(async (tx) => {
        const n = (active.get(tx.slot) ?? 0) + 1;
        active.set(tx.slot, n);
        if (n > 1) overlaps.push(`slot ${tx.slot} lent twice`);
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        await tx.send(rec(`r${i}`));
        await gate.promise;
        concurrent--;
        active.set(tx.slot, (active.get(tx.slot) ?? 1) - 1);
        return tx.slot;
      }),
    );
    await waitFor(() => concurrent === 3, { ...ON_FAKES, what: 'three callers at work' });
    assert.equal(pool.stats().busy, 3);
    assert.equal(pool.stats().waiting, 9);
    // Release in an order unrelated to arrival.
    for (const i of [5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6]) gates[i]?.resolve();
    const slots = await Promise.all(runs.map((r) => r.then((x) => x.value)));
    assert.deepEqual(overlaps, []);
    assert.equal(maxConcurrent, 3);
    assert.deepEqual(new Set(slots), new Set([0, 1, 2]));
    assert.equal(cluster.committedValues().length, 12);
    for (const id of cluster.ids()) assert.equal(cluster.created(id), 1);
    await pool.close();
    assert.deepEqual(cluster.violations, []);
  });
});

describe('waiting for a producer', () => {
  it('serves waiters in FIFO order', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const log: string[] = [];
    const first = deferred();
    const holder = pool.run(gatedWork('holder', log, first));
    await waitFor(() => log.length === 1, { ...ON_FAKES, what: 'holder at work' });
    const names = ['w1', 'w2', 'w3', 'w4', 'w5'];
    const open = deferred();
    open.resolve();
    const waiters: Array<Promise<unknown>> = [];
    for (const name of names) {
      waiters.push(pool.run(gatedWork(name, log, open)));
      await flush(1);
    }
    await waitFor(() => pool.stats().waiting === 5, { ...ON_FAKES, what: 'five waiters queued' });
    first.resolve();
    await Promise.all([holder, ...waiters]);
    assert.deepEqual(log, ['holder', ...names]);
    assert.deepEqual(cluster.committedValues(), ['holder', ...names]);
    await pool.close();
  });

  it('times a waiter out with AcquireTimeoutError; it leaves the queue and the next waiter is served', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, maxWaiting: 1 });
    const log: string[] = [];
    const gate = deferred();
    const holder = pool.run(gatedWork('holder', log, gate));
    await waitFor(() => log.length === 1, { ...ON_FAKES, what: 'holder at work' });
    let ran = false;
    await assert.rejects(
      pool.run(
        async () => {
          ran = true;
        },
        { acquireTimeoutMs: 10 },
      ),
      (err: unknown) => err instanceof AcquireTimeoutError && err.timeoutMs === 10 && err.code === 'TXGATE_ACQUIRE_TIMEOUT',
    );
    assert.equal(ran, false);
    assert.equal(pool.stats().waiting, 0);
    // The queue (max 1) has room again: a timed-out waiter must not keep its place.
    const next = pool.run(gatedWork('next', log, gate));
    await waitFor(() => pool.stats().waiting === 1, { ...ON_FAKES, what: 'next waiter queued' });
    gate.resolve();
    await Promise.all([holder, next]);
    assert.deepEqual(log, ['holder', 'next']);
    assert.equal(cluster.callsOf('begin').length, 2, 'the timed-out caller never began a transaction');
    await pool.close();
  });

  it('uses the pool-wide acquireTimeoutMs when run() gives none', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, acquireTimeoutMs: 15 });
    const gate = deferred();
    const log: string[] = [];
    const holder = pool.run(gatedWork('holder', log, gate));
    await waitFor(() => log.length === 1, { ...ON_FAKES, what: 'holder at work' });
    await assert.rejects(pool.run(async () => 1), (err: unknown) => err instanceof AcquireTimeoutError && err.timeoutMs === 15);
    gate.resolve();
    await holder;
    await pool.close();
  });

  it('an AbortSignal removes a waiter with AcquireAbortedError carrying the reason', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, maxWaiting: 2 });
    const log: string[] = [];
    const gate = deferred();
    const holder = pool.run(gatedWork('holder', log, gate));
    await waitFor(() => log.length === 1, { ...ON_FAKES, what: 'holder at work' });
    const ac = new AbortController();
    const aborted = track(pool.run(gatedWork('aborted', log, gate), { signal: ac.signal }));
    const after = pool.run(gatedWork('after', log, gate));
    await waitFor(() => pool.stats().waiting === 2, { ...ON_FAKES, what: 'two waiters' });
    const reason = new Error('client went away');
    ac.abort(reason);
    await assert.rejects(aborted.promise, (err: unknown) => err instanceof AcquireAbortedError && err.cause === reason);
    assert.equal(pool.stats().waiting, 1);
    gate.resolve();
    await Promise.all([holder, after]);
    assert.deepEqual(log, ['holder', 'after']);
    await pool.close();
  });

  it('an already-aborted signal is refused at once, even with a free producer', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const ac = new AbortController();
    ac.abort(new Error('already gone'));
    await assert.rejects(pool.run(async () => 1, { signal: ac.signal }), AcquireAbortedError);
    assert.equal(cluster.callsOf('begin').length, 0);
    // The refused caller did not keep the producer.
    const r = await pool.run(async () => 'ok');
    assert.equal(r.value, 'ok');
    await pool.close();
  });

  it('aborting after the producer was lent does not affect the running transaction', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const ac = new AbortController();
    const gate = deferred();
    const log: string[] = [];
    const running = pool.run(gatedWork('lent', log, gate), { signal: ac.signal });
    await waitFor(() => log.length === 1, { ...ON_FAKES, what: 'at work' });
    ac.abort();
    gate.resolve();
    assert.equal((await running).value, 'lent');
    assert.deepEqual(cluster.committedValues(), ['lent']);
    await pool.close();
  });

  it('refuses at once with PoolSaturatedError past maxWaiting', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, maxWaiting: 2 });
    const log: string[] = [];
    const gate = deferred();
    const runs = [pool.run(gatedWork('holder', log, gate))];
    await waitFor(() => log.length === 1, { ...ON_FAKES, what: 'holder at work' });
    runs.push(pool.run(gatedWork('w1', log, gate)), pool.run(gatedWork('w2', log, gate)));
    await waitFor(() => pool.stats().waiting === 2, { ...ON_FAKES, what: 'two waiters' });
    // Refused while the holder still works: no waiting for a timeout.
    await assert.rejects(
      pool.run(gatedWork('refused', log, gate)),
      (err: unknown) => err instanceof PoolSaturatedError && err.waiting === 2 && err.maxWaiting === 2 && err.code === 'TXGATE_POOL_SATURATED',
    );
    assert.equal(gate.settled, false);
    assert.equal(pool.stats().counters.rejected, 1);
    gate.resolve();
    await Promise.all(runs);
    assert.deepEqual(log, ['holder', 'w1', 'w2']);
    await pool.close();
  });
});
