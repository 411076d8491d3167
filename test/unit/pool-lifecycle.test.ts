// Start, ids, stats and the result a caller gets back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PoolClosedError, PoolSaturatedError, PoolStartError, TransactionClosedError } from '../../src/errors.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import type { Transaction } from '../../src/pool/types.js';
import { deferred, FakeCluster, fakePoolOptions, flush, kafkaErrors, rec, track } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

describe('pool start', () => {
  it('creates N producers with ids <prefix>-<instance>-<slot> and initialises all before it is ready', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 3, transactionalIdPrefix: 'orders', instanceId: 'eu1' }));
    const inits = cluster.hold('init');
    const started = track(pool.start());
    await waitFor(() => inits.count === 3, { ...ON_FAKES, what: 'three init calls' });
    const ids = cluster.ids();
    assert.equal(ids.length, 3);
    for (const id of ids) assert.equal(cluster.created(id), 1);

    // Not ready while any init is outstanding.
    const [a, b, c] = [await inits.next(), await inits.next(), await inits.next()];
    a.release();
    b.release();
    await flush();
    assert.equal(started.settled(), false, 'start() resolved before every producer was initialised');
    c.release();
    await started.promise;

    const stats = pool.stats();
    assert.equal(stats.size, 3);
    assert.equal(stats.idle, 3);
    assert.deepEqual(
      stats.slots.map((s) => s.slot),
      [0, 1, 2],
    );
    for (const s of stats.slots) {
      assert.equal(s.transactionalId, `orders-eu1-${s.slot}`);
      assert.equal(s.state, 'idle');
    }
    assert.deepEqual([...ids].sort(), ['orders-eu1-0', 'orders-eu1-1', 'orders-eu1-2']);
    for (const call of cluster.callsOf('init')) assert.equal(call.timeoutMs, 1000, 'initTimeoutMs is passed to init');
    await pool.close();
    assert.deepEqual(cluster.violations, []);
  });

  it('two instances with different instance ids use disjoint transactional ids', async () => {
    const cluster = new FakeCluster();
    const p1 = new TransactionalProducerPool(fakePoolOptions(cluster, { instanceId: 'a' }));
    const p2 = new TransactionalProducerPool(fakePoolOptions(cluster, { instanceId: 'b' }));
    await Promise.all([p1.start(), p2.start()]);
    assert.deepEqual(cluster.ids().sort(), ['tx-a-0', 'tx-a-1', 'tx-b-0', 'tx-b-1']);
    await p1.run((tx) => tx.send(rec('1')));
    await p2.run((tx) => tx.send(rec('2')));
    assert.deepEqual(cluster.committedValues().sort(), ['1', '2']);
    await Promise.all([p1.close(), p2.close()]);
    assert.deepEqual(cluster.violations, []);
  });

  it('fails with PoolStartError when producers cannot initialise, and closes what it made', async () => {
    const cluster = new FakeCluster();
    cluster.failNext('init', kafkaErrors.fatal, { times: Infinity });
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 2 }));
    await assert.rejects(pool.start(), PoolStartError);
    await waitFor(() => cluster.producers().every((p) => p.closed), { ...ON_FAKES, what: 'every producer closed after a failed start' });
    await assert.rejects(pool.run(async () => 1), PoolClosedError);
  });

  it('a run() queued while start() fails is refused at once, not left waiting for its timeout', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1, acquireTimeoutMs: 1_000 }));
    const inits = cluster.hold('init');
    const starting = pool.start();
    const held = await inits.next();
    const queued = track(pool.run(async () => 'never'));
    held.fail(kafkaErrors.fatal());
    await assert.rejects(starting, PoolStartError);
    await waitFor(queued.settled, { ...ON_FAKES, timeoutMs: 500, what: 'the queued run() settles' });
    await assert.rejects(queued.promise, PoolClosedError);
  });

  it('run() before start() is refused with PoolClosedError and touches no producer', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster));
    let ran = false;
    await assert.rejects(
      pool.run(async () => {
        ran = true;
      }),
      PoolClosedError,
    );
    assert.equal(ran, false);
    assert.equal(cluster.callsOf('begin').length, 0);
  });
});

describe('a transaction through the pool', () => {
  it('returns the work value and every record position, in send order', async () => {
    const cluster = new FakeCluster({ partitions: 2 });
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1 }));
    await pool.start();
    const result = await pool.run(async (tx) => {
      const first = await tx.send(rec('a', 'orders', 1));
      const more = await tx.send([rec('b', 'audit', 0), rec('c', 'orders', 1)]);
      assert.equal(first.length, 1);
      assert.equal(more.length, 2);
      return { answer: 42, firstOffset: first[0]?.offset };
    });
    assert.deepEqual(result.value, { answer: 42, firstOffset: '0' });
    assert.equal(result.slot, 0);
    assert.equal(result.transactionalId, 'tx-i1-0');
    assert.deepEqual(result.records, [
      { topic: 'orders', partition: 1, offset: '0' },
      { topic: 'audit', partition: 0, offset: '0' },
      { topic: 'orders', partition: 1, offset: '1' },
    ]);
    assert.deepEqual(cluster.committedValues('orders'), ['a', 'c']);
    assert.deepEqual(cluster.committedValues('audit'), ['b']);
    assert.deepEqual(cluster.kinds('tx-i1-0'), ['init', 'begin', 'send', 'send', 'send', 'commit']);
    assert.equal(cluster.callsOf('commit')[0]?.timeoutMs, 100, 'commitTimeoutMs is passed to commit');
    await pool.close();
    assert.deepEqual(cluster.violations, []);
  });

  it('sendOffsets goes into the same transaction', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1 }));
    await pool.start();
    const consumer = { fake: 'consumer' };
    await pool.run(async (tx) => {
      await tx.send(rec('a'));
      await tx.sendOffsets([{ topic: 'in', partition: 0, offset: 7 }], consumer);
    });
    const txn = cluster.transactions[0];
    assert.equal(txn?.state, 'committed');
    assert.deepEqual(txn?.offsets, [[{ topic: 'in', partition: 0, offset: 7 }]]);
    await pool.close();
    assert.deepEqual(cluster.violations, []);
  });

  it('the tx handle is dead after the callback returns', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1 }));
    await pool.start();
    let leaked: Transaction | undefined;
    await pool.run(async (tx) => {
      leaked = tx;
      await tx.send(rec('inside'));
    });
    assert.ok(leaked);
    const tx = leaked;
    await assert.rejects(async () => tx.send(rec('late')), TransactionClosedError);
    await assert.rejects(async () => tx.sendOffsets([{ topic: 'in', partition: 0, offset: 1 }], {}), TransactionClosedError);
    // Also while the producer is lent to the next caller: the old handle must not reach its transaction.
    await pool.run(async () => {
      await assert.rejects(async () => tx.send(rec('sneaky')), TransactionClosedError);
    });
    assert.deepEqual(cluster.committedValues(), ['inside']);
    assert.equal(cluster.callsOf('send').length, 1);
    await pool.close();
    assert.deepEqual(cluster.violations, []);
  });

  it('a send the work did not await is delivered before the commit, never after it', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1 }));
    await pool.start();
    const sends = cluster.hold('send');
    const running = track(
      pool.run(async (tx) => {
        void tx.send(rec('fire-and-forget')).catch(() => undefined);
      }),
    );
    const held = await sends.next();
    await flush();
    assert.equal(cluster.callsOf('commit').length, 0, 'commit started while a delivery was outstanding');
    held.release();
    const result = await running.promise;
    assert.equal(result.records.length, 1);
    assert.deepEqual(cluster.committedValues(), ['fire-and-forget']);
    await pool.close();
    assert.deepEqual(cluster.violations, []);
  });

  it('stats() counts commits, aborts, rejections and per-slot transactions', async () => {
    const cluster = new FakeCluster();
    const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1, maxWaiting: 0 }));
    await pool.start();
    await pool.run((tx) => tx.send(rec('1')));
    await pool.run((tx) => tx.send(rec('2')));
    await assert.rejects(
      pool.run(async () => {
        throw new Error('no');
      }),
    );
    const gate = deferred();
    const blocker = pool.run(async (tx) => {
      await tx.send(rec('3'));
      await gate.promise;
    });
    await waitFor(() => pool.stats().busy === 1, { ...ON_FAKES, what: 'the blocker holds the only producer' });
    await assert.rejects(pool.run(async () => 1), PoolSaturatedError); // maxWaiting 0
    gate.resolve();
    await blocker;
    const stats = pool.stats();
    assert.equal(stats.counters.committed, 3);
    assert.equal(stats.counters.aborted, 1);
    assert.equal(stats.counters.rejected, 1);
    assert.equal(stats.counters.outcomeUnknown, 0);
    assert.equal(stats.counters.replacements, 0);
    assert.equal(stats.slots[0]?.transactions, 3, 'committed transactions of the slot');
    assert.equal(stats.slots[0]?.replacements, 0);
    assert.equal(stats.closed, false);
    assert.equal(stats.waiting, 0);
    await pool.close();
    assert.equal(pool.stats().closed, true);
    assert.deepEqual(cluster.violations, []);
  });
});
