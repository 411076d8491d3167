/**
 * The pool against a real broker: exactly-once visibility under concurrency, bounded
 * transactional ids, and fencing by a second pool that claims the same ids.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  TransactionAbortedError,
  TransactionalProducerPool,
  createConfluentProducerFactory,
  isFencing,
} from '../../src/index.js';
import { consumeAll, createTopics, listTransactionalIds, testBootstrap, uniqueName, waitFor } from '../support/kafka.js';

const bootstrap = testBootstrap();

function newPool(prefix: string, size: number, instanceId = 'it') {
  return new TransactionalProducerPool({
    producerFactory: createConfluentProducerFactory({ 'bootstrap.servers': bootstrap }),
    size,
    transactionalIdPrefix: prefix,
    instanceId,
    acquireTimeoutMs: 120_000,
    maxWaiting: 1_000,
    replaceBackoffMs: 100,
  });
}

describe('pool against a real broker', () => {
  describe('500 concurrent transactions through a pool of 8', () => {
    const topicA = uniqueName('pool-a');
    const topicB = uniqueName('pool-b');
    const prefix = uniqueName('txg');
    const pool = newPool(prefix, 8);
    const committed = new Map<string, { topic: string; partition: number; offset: string }[]>();
    const aborted = new Set<string>();

    before(async () => {
      await createTopics(bootstrap, [
        { topic: topicA, partitions: 3 },
        { topic: topicB, partitions: 2 },
      ]);
      await pool.start();
      await Promise.all(
        Array.from({ length: 500 }, async (_, i) => {
          const id = `r${i}`;
          try {
            const result = await pool.run(async (tx) => {
              const sent = await tx.send([
                { topic: topicA, key: Buffer.from(id), value: Buffer.from(`${id}-a`) },
                { topic: topicB, key: Buffer.from(id), value: Buffer.from(`${id}-b`) },
              ]);
              // Every 7th caller changes its mind after its records reached the broker.
              if (i % 7 === 0) throw new Error(`caller ${i} gives up`);
              return sent.length;
            });
            assert.equal(result.value, 2);
            committed.set(id, result.records);
          } catch (error) {
            assert.ok(error instanceof TransactionAbortedError, `unexpected ${String(error)}`);
            assert.equal(error.outcome, 'aborted');
            aborted.add(id);
          }
        }),
      );
    });
    after(() => pool.close());

    it('commits exactly the transactions that did not throw', () => {
      assert.equal(aborted.size, Math.ceil(500 / 7));
      assert.equal(committed.size, 500 - aborted.size);
      assert.equal(pool.stats().counters.committed, committed.size);
      assert.equal(pool.stats().counters.replacements, 0);
    });

    it('a read_committed consumer sees every committed record exactly once, at the reported offsets', async () => {
      const records = await consumeAll(bootstrap, [topicA, topicB], {
        isolation: 'read_committed',
        expected: committed.size * 2,
      });
      const seen = new Map<string, number>();
      for (const r of records) seen.set(r.value!.toString(), (seen.get(r.value!.toString()) ?? 0) + 1);
      for (const [id, positions] of committed) {
        assert.equal(seen.get(`${id}-a`), 1, `${id}-a seen ${seen.get(`${id}-a`) ?? 0} times`);
        assert.equal(seen.get(`${id}-b`), 1, `${id}-b seen ${seen.get(`${id}-b`) ?? 0} times`);
        for (const [i, pos] of positions.entries()) {
          const at = records.find((r) => r.topic === pos.topic && r.partition === pos.partition && String(r.offset) === pos.offset);
          assert.equal(at?.value?.toString(), `${id}-${i === 0 ? 'a' : 'b'}`);
        }
      }
      for (const id of aborted) assert.equal(seen.get(`${id}-a`), undefined, `aborted ${id} is visible`);
      assert.equal(records.length, committed.size * 2);
    });

    it('the aborted records did reach the log (read_uncommitted sees them)', async () => {
      const records = await consumeAll(bootstrap, [topicA], { isolation: 'read_uncommitted', expected: 500 });
      const values = new Set(records.map((r) => r.value!.toString()));
      for (const id of aborted) assert.ok(values.has(`${id}-a`));
    });

    it('the broker holds exactly 8 of our transactional ids', async () => {
      const ids = (await listTransactionalIds(bootstrap)).filter((id) => id.startsWith(`${prefix}-`));
      assert.deepEqual(ids.sort(), pool.transactionalIds.sort());
    });
  });

  it('a transaction that sends nothing succeeds on a real broker and leaves the producer usable', async () => {
    const topic = uniqueName('empty');
    await createTopics(bootstrap, [{ topic, partitions: 1 }]);
    const pool = newPool(uniqueName('txg'), 1);
    await pool.start();
    try {
      for (let i = 0; i < 3; i++) assert.deepEqual((await pool.run(async () => i)).records, []);
      await pool.run((tx) => tx.send({ topic, value: Buffer.from('after-empty') }));
      assert.equal(pool.stats().counters.replacements, 0);
    } finally {
      await pool.close();
    }
    const values = (await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: 1 })).map((r) => r.value!.toString());
    assert.deepEqual(values, ['after-empty']);
  });

  it('a second pool with the same prefix and instance fences the first; the first replaces its producers and keeps working', async () => {
    const topic = uniqueName('fence');
    const prefix = uniqueName('txg');
    await createTopics(bootstrap, [{ topic, partitions: 1 }]);
    const first = newPool(prefix, 2);
    const second = newPool(prefix, 2);
    const committedValues: string[] = [];
    const txn = (pool: TransactionalProducerPool, name: string) =>
      pool
        .run((tx) => tx.send([{ topic, value: Buffer.from(`${name}-1`) }, { topic, value: Buffer.from(`${name}-2`) }]))
        .then(() => committedValues.push(name));
    try {
      await first.start();
      await txn(first, 'first-before');
      await second.start(); // InitProducerId on the same ids: the first pool's producers are now zombies
      await txn(second, 'second-1');

      // Each of the first pool's slots learns it was fenced on its next transaction.
      const failures: unknown[] = [];
      for (let i = 0; i < 2; i++) await txn(first, `first-fenced-${i}`).catch((e) => failures.push(e));
      assert.equal(failures.length, 2);
      for (const failure of failures) {
        assert.ok(failure instanceof TransactionAbortedError, String(failure));
        assert.ok(isFencing(failure.cause), `not reported as fencing: ${String(failure.cause)}`);
      }
      // ... and replaces them in place, with the same ids, and goes on committing.
      await waitFor(() => first.stats().idle === 2, { what: 'both slots replaced' });
      assert.equal(first.stats().counters.replacements, 2);
      assert.deepEqual(first.stats().slots.map((s) => s.transactionalId), first.transactionalIds);
      await txn(first, 'first-after');
    } finally {
      await first.close();
      await second.close();
    }
    // No partial transaction: every committed transaction shows both records, nothing else shows.
    const values = (await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: committedValues.length * 2 })).map(
      (r) => r.value!.toString(),
    );
    assert.deepEqual(values.sort(), committedValues.flatMap((n) => [`${n}-1`, `${n}-2`]).sort());
  });
});

