/**
 * Two live processes with one transactional id fence each other forever if each re-initialises
 * at once. The pool replaces a one-off fencing at once, but backs off (and says why) when the
 * same slot keeps being fenced.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { TransactionAbortedError, TransactionalProducerPool, isFencing } from '../../src/index.js';
import type { PoolEvents } from '../../src/pool/types.js';
import { FakeCluster, fakePoolOptions, rec } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

it('replaces a fenced slot at once the first times, then backs off and reports a fencing storm', async () => {
  const cluster = new FakeCluster();
  const storms: Array<{ fencings: number; delayMs: number }> = [];
  const events: PoolEvents = { fencingStorm: ({ fencings, delayMs }) => storms.push({ fencings, delayMs }) };
  const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: 1, events, replaceBackoffMs: 5 }));
  await pool.start();

  for (let round = 1; round <= 4; round++) {
    cluster.fence('tx-i1-0'); // the other process initialises our id again
    await assert.rejects(
      pool.run((tx) => tx.send(rec(`r${round}`))),
      (err: unknown) => err instanceof TransactionAbortedError && isFencing(err.cause),
    );
    await waitFor(() => pool.stats().idle === 1, { ...ON_FAKES, what: `slot back after fencing ${round}` });
  }

  assert.deepEqual(
    storms.map((s) => s.fencings),
    [3, 4],
    'the third and fourth fencing within the window are a storm',
  );
  assert.ok(storms[1]!.delayMs > storms[0]!.delayMs, 'each further fencing waits longer');
  assert.equal(cluster.created('tx-i1-0'), 5, 'still the same id, replaced in place each time');
  await pool.run((tx) => tx.send(rec('after')));
  assert.deepEqual(cluster.committedValues(), ['after']);
  await pool.close();
});
