/**
 * Work that sends nothing: KIP-890 brokers refuse to commit an empty transaction, so the pool
 * ends it locally instead, and the caller still gets its value. A caller that gave up just as a
 * producer was handed to it never begins a transaction.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { AcquireAbortedError, TransactionalProducerPool } from '../../src/index.js';
import { FakeCluster, deferred, fakePoolOptions, rec } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

it('an empty transaction resolves with the value, is never committed, and keeps the producer', async () => {
  const cluster = new FakeCluster();
  const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1 }));
  await pool.start();
  const result = await pool.run(async () => 'nothing to send');
  assert.equal(result.value, 'nothing to send');
  assert.deepEqual(result.records, []);
  assert.equal(cluster.callsOf('commit').length, 0);
  assert.equal(pool.stats().counters.committed, 1);
  assert.equal(pool.stats().counters.aborted, 0);
  await pool.run((tx) => tx.send(rec('next')));
  assert.deepEqual(cluster.committedValues(), ['next']);
  assert.equal(cluster.created('tx-i1-0'), 1);
  await pool.close();
});

it('a caller whose signal fires as the producer is handed over never begins', async () => {
  const cluster = new FakeCluster();
  const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1 }));
  await pool.start();
  const gate = deferred();
  const first = pool.run(async (tx) => {
    await tx.send(rec('first'));
    await gate.promise;
  });
  await waitFor(() => pool.stats().busy === 1, { ...ON_FAKES, what: 'the only producer is lent' });
  const controller = new AbortController();
  let ran = false;
  const second = pool.run(
    async () => {
      ran = true;
    },
    { signal: controller.signal },
  );
  await waitFor(() => pool.stats().waiting === 1, { ...ON_FAKES, what: 'the second caller waits' });
  // The producer is handed to the waiter synchronously when the first transaction releases it;
  // the caller gives up in the same tick, before its run continues.
  const begins = cluster.callsOf('begin').length;
  const released = first.then(() => controller.abort(new Error('client went away')));
  gate.resolve();
  await released;
  await assert.rejects(second, (err: unknown) => err instanceof AcquireAbortedError);
  assert.equal(ran, false);
  assert.equal(cluster.callsOf('begin').length, begins, 'no transaction was begun for it');
  assert.equal(pool.stats().idle, 1, 'the producer went back to the pool');
  await pool.close();
});
