// Graceful close with work in flight.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PoolClosedError, TransactionAbortedError, TransactionClosedError, TransactionError, TransactionOutcomeUnknownError } from '../../src/errors.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import type { Transaction } from '../../src/pool/types.js';
import { deferred, FakeCluster, fakePoolOptions, flush, kafkaErrors, rec, startPool, track } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

describe('close()', () => {
  it('lets running transactions finish, rejects waiters and new callers, then closes every producer', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 2 });
    const gates = [deferred(), deferred()];
    let started = 0;
    const running = gates.map((gate, i) =>
      pool.run(async (tx) => {
        started++;
        await tx.send(rec(`running-${i}`));
        await gate.promise;
        return i;
      }),
    );
    await waitFor(() => started === 2, { ...ON_FAKES, what: 'both slots busy' });
    const waiters = [0, 1, 2].map((i) => track(pool.run((tx) => tx.send(rec(`waiter-${i}`)))));
    await waitFor(() => pool.stats().waiting === 3, { ...ON_FAKES, what: 'three waiters' });

    const closing = track(pool.close({ timeoutMs: 5000 }));
    for (const w of waiters) await assert.rejects(w.promise, PoolClosedError);
    await assert.rejects(pool.run(async () => 1), PoolClosedError);
    await flush();
    assert.equal(closing.settled(), false, 'close() returned while transactions were still running');
    assert.equal(cluster.producers().some((p) => p.closed), false, 'a producer was closed under a running transaction');

    gates[1]?.resolve();
    gates[0]?.resolve();
    assert.deepEqual((await Promise.all(running)).map((r) => r.value), [0, 1]);
    await closing.promise;
    assert.deepEqual(cluster.committedValues().sort(), ['running-0', 'running-1']);
    assert.ok(cluster.producers().every((p) => p.closed), 'every producer closed');
    assert.equal(cluster.callsOf('close').length, 2);
    const stats = pool.stats();
    assert.equal(stats.closed, true);
    assert.equal(stats.waiting, 0);
    assert.deepEqual(cluster.violations, []);
  });

  /** A pool with one transaction whose work never returns by itself; close() is called on it. */
  async function stuckAtClose() {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 2 });
    const never = deferred();
    let handle: Transaction | undefined;
    const stuck = track(
      pool.run(async (tx) => {
        handle = tx;
        await tx.send(rec('stuck'));
        await never.promise;
        return 'late';
      }),
    );
    await waitFor(() => cluster.callsOf('send')[0]?.status === 'ok', { ...ON_FAKES, what: 'stuck work sent' });
    await pool.close({ timeoutMs: 30 });
    assert.ok(handle);
    return { cluster, pool, never, stuck, tx: handle };
  }

  it('aborts what is still running at the deadline and closes every producer', async () => {
    const { cluster, never } = await stuckAtClose();
    assert.ok(cluster.producers().every((p) => p.closed), 'every producer closed');
    assert.deepEqual(cluster.committedValues(), []);
    assert.deepEqual(cluster.abortedValues(), ['stuck']);
    assert.deepEqual(cluster.openTransactions(), []);
    never.resolve();
  });

  it('the run() whose transaction close() aborted settles at once with TransactionAbortedError', async () => {
    const { stuck, never } = await stuckAtClose();
    try {
      await waitFor(stuck.settled, { ...ON_FAKES, timeoutMs: 500, what: 'run() of the aborted transaction settles before its work returns' });
      await assert.rejects(stuck.promise, TransactionAbortedError);
    } finally {
      never.resolve();
    }
  });

  it('the handle of a transaction close() aborted is dead: nothing reaches the closed producer', async () => {
    const { cluster, tx, never } = await stuckAtClose();
    never.resolve();
    await assert.rejects(async () => tx.send(rec('after-close')), TransactionClosedError);
    assert.deepEqual(cluster.violations, []);
  });

  it('work returning after close() aborted its transaction commits nothing and calls no closed producer', async () => {
    const { cluster, stuck, never } = await stuckAtClose();
    never.resolve();
    await waitFor(stuck.settled, { ...ON_FAKES, what: 'run() settles once its work returns' });
    await assert.rejects(stuck.promise, TransactionAbortedError);
    assert.deepEqual(cluster.committedValues(), []);
    assert.deepEqual(cluster.violations, [], 'no call reached a producer after close');
  });

  it('a commit in progress at close is not cut off by an abort', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const commits = cluster.hold('commit');
    const running = track(pool.run((tx) => tx.send(rec('committing'))));
    const held = await commits.next();
    const closing = track(pool.close({ timeoutMs: 5000 }));
    await flush();
    assert.equal(closing.settled(), false);
    held.release();
    await running.promise;
    await closing.promise;
    assert.deepEqual(cluster.committedValues(), ['committing']);
    assert.equal(cluster.callsOf('abort').length, 0);
    assert.ok(cluster.producers().every((p) => p.closed));
    assert.deepEqual(cluster.violations, []);
  });

  it('a commit still running at the close deadline is not aborted underneath: close() waits for its answer', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const commits = cluster.hold('commit');
    const running = track(pool.run((tx) => tx.send(rec('committing'))));
    const held = await commits.next();
    let closed = false;
    const closing = pool.close({ timeoutMs: 10 }).then(() => (closed = true));
    // A commit call is bounded by commitTimeoutMs, so close() waits for it rather than abort
    // or close the producer underneath it (both would overlap the commit).
    await waitFor(() => pool.stats().closed, { ...ON_FAKES, what: 'close() began' });
    await new Promise((r) => setTimeout(r, 50)); // well past close()'s 10 ms deadline
    assert.equal(closed, false, 'close() resolved while a commit was in flight');
    assert.equal(cluster.callsOf('abort').length, 0, 'abort() overlapped the commit');
    assert.ok(cluster.producers().every((p) => !p.closed), 'the producer was closed under the commit');
    held.release();
    await closing;
    await waitFor(running.settled, { ...ON_FAKES, what: 'run() settles' });
    assert.equal(running.result()?.status, 'fulfilled', 'the commit the broker answered is reported committed');
    assert.deepEqual(cluster.committedValues(), ['committing']);
    assert.deepEqual(cluster.violations, []);
  });

  it('a transaction still beginning at the close deadline is not aborted before it exists, nor begun after close', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, retry: { deadlineMs: 300, initialBackoffMs: 5, maxBackoffMs: 10 } });
    cluster.failNext('begin', kafkaErrors.concurrentTransactions, { times: 3 });
    let ran = false;
    const running = track(
      pool.run(async (tx) => {
        ran = true;
        await tx.send(rec('x'));
      }),
    );
    await waitFor(() => cluster.callsOf('begin').length >= 1, { ...ON_FAKES, what: 'begin is being retried' });
    await pool.close({ timeoutMs: 1 });
    await waitFor(running.settled, { ...ON_FAKES, what: 'run() settles' });
    await assert.rejects(running.promise, (err: unknown) => err instanceof TransactionError || err instanceof PoolClosedError);
    assert.equal(ran, false, 'work ran on a pool that had closed');
    assert.deepEqual(cluster.committedValues(), []);
    assert.deepEqual(cluster.violations, []);
  });

  it('close() waits for a producer that a replacement started during close() is still closing', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const commits = cluster.hold('commit');
    const closes = cluster.hold('close');
    const running = track(pool.run((tx) => tx.send(rec('a'))));
    const commit = await commits.next();
    const closing = track(pool.close({ timeoutMs: 5000 }));
    commit.fail(kafkaErrors.fatal());
    await assert.rejects(running.promise, TransactionError);
    const producerClose = await closes.next();
    await flush();
    const closedEarly = closing.settled();
    producerClose.release();
    closes.stop();
    await closing.promise;
    assert.equal(closedEarly, false, 'close() resolved while a producer was still closing');
    assert.ok(cluster.producers().every((p) => p.closed));
    assert.deepEqual(cluster.violations, []);
  });

  it('start() after close() is refused and creates no producer', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster));
    await pool.close();
    await assert.rejects(pool.start());
    assert.equal(cluster.producers().length, 0, 'producers were created for a closed pool');
    await assert.rejects(pool.run(async () => 1), PoolClosedError);
  });

  it('closes a slot that is being replaced, and is idempotent', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 2 });
    const init2 = cluster.hold('init', { producer: 2 });
    cluster.fence('tx-i1-0');
    cluster.fence('tx-i1-1');
    await Promise.allSettled([pool.run((tx) => tx.send(rec('a'))), pool.run((tx) => tx.send(rec('b')))]);
    await init2.next();
    const first = pool.close({ timeoutMs: 200 });
    const second = pool.close({ timeoutMs: 200 });
    init2.stop();
    await Promise.all([first, second]);
    await pool.close();
    await waitFor(() => cluster.producers().every((p) => p.closed), { ...ON_FAKES, what: 'every producer (old and replacement) closed' });
    assert.deepEqual(cluster.violations, []);
  });

  it('a run rejected at close never reaches a producer', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    await pool.close();
    let ran = false;
    await assert.rejects(
      pool.run(async () => {
        ran = true;
      }),
      (err: unknown) => err instanceof PoolClosedError && !(err instanceof TransactionError),
    );
    assert.equal(ran, false);
    assert.equal(cluster.callsOf('begin').length, 0);
  });
});
