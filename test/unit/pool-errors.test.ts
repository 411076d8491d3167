// How the pool handles each category of Kafka error (kafka-facts.md, KIP-1050).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TransactionAbortedError, TransactionError, TransactionOutcomeUnknownError } from '../../src/errors.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import { KafkaClientError } from '../../src/pool/producer-port.js';
import type { PoolEvents, ReplaceCause, SlotState } from '../../src/pool/types.js';
import { deferred, FakeCluster, flush, kafkaErrors, rec, startPool, track } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

interface Recorded {
  retried: Array<{ slot: number; step: string }>;
  replacing: Array<{ slot: number; transactionalId: string; cause: ReplaceCause }>;
  replaced: Array<{ slot: number; transactionalId: string; cause: ReplaceCause }>;
}

function recordingEvents(): { events: PoolEvents; seen: Recorded } {
  const seen: Recorded = { retried: [], replacing: [], replaced: [] };
  return {
    seen,
    events: {
      retried: ({ slot, step }) => seen.retried.push({ slot, step }),
      replacing: ({ slot, transactionalId, cause }) => seen.replacing.push({ slot, transactionalId, cause }),
      replaced: ({ slot, transactionalId, cause }) => seen.replaced.push({ slot, transactionalId, cause }),
    },
  };
}

const slotState = (pool: TransactionalProducerPool, slot: number): SlotState | undefined => pool.stats().slots.find((s) => s.slot === slot)?.state;

/** Closes the pool and checks what every test must leave behind. */
async function closeAndCheck(pool: TransactionalProducerPool, cluster: FakeCluster): Promise<void> {
  await pool.close();
  assert.deepEqual(cluster.violations, []);
  assert.ok(cluster.producers().every((p) => p.closed), 'every producer is closed');
  assert.deepEqual(cluster.openTransactions(), [], 'no transaction left open');
}

describe('work fails', () => {
  it('work throwing aborts the transaction: TransactionAbortedError with the cause, producer kept', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const boom = new Error('validation failed');
    await assert.rejects(
      pool.run(async (tx) => {
        await tx.send(rec('doomed'));
        throw boom;
      }),
      (err: unknown) =>
        err instanceof TransactionAbortedError && err.outcome === 'aborted' && err.cause === boom && err.transactionalId === 'tx-i1-0',
    );
    assert.deepEqual(cluster.kinds('tx-i1-0'), ['init', 'begin', 'send', 'abort']);
    assert.deepEqual(cluster.abortedValues(), ['doomed']);
    assert.deepEqual(cluster.committedValues(), []);
    // The same producer serves the next caller.
    await pool.run((tx) => tx.send(rec('next')));
    assert.equal(cluster.created('tx-i1-0'), 1);
    assert.deepEqual(cluster.committedValues(), ['next']);
    assert.equal(pool.stats().counters.replacements, 0);
    await closeAndCheck(pool, cluster);
  });

  it('a refused record rejects its send with the KafkaClientError, the transaction is aborted, and the producer renewed', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    cluster.failNext('send', kafkaErrors.msgSizeTooLarge, { where: (c) => c.record?.value?.toString() === 'huge' });
    let sendError: unknown;
    await assert.rejects(
      pool.run(async (tx) => {
        await tx.send(rec('fine'));
        try {
          await tx.send(rec('huge'));
        } catch (err) {
          sendError = err;
        }
        return 'work swallowed the failure';
      }),
      (err: unknown) => err instanceof TransactionAbortedError,
    );
    assert.ok(sendError instanceof KafkaClientError && sendError.code === 10, 'tx.send rejects with the delivery error');
    assert.deepEqual(cluster.committedValues(), [], 'a transaction with a failed record never commits');
    await pool.run((tx) => tx.send(rec('after')));
    assert.deepEqual(cluster.committedValues(), ['after']);
    // librdkafka would purge the next transaction's first record on that partition, so the
    // pool renews the producer (same id) once the abort went through.
    assert.equal(cluster.created('tx-i1-0'), 2);
    assert.deepEqual(
      cluster.calls.filter((c) => c.kind === 'abort').length,
      1,
      'the refused transaction was aborted before the producer was renewed',
    );
    await closeAndCheck(pool, cluster);
  });
});

describe('commit fails', () => {
  it('an abortable error on commit aborts; the same producer is kept', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    cluster.failNext('commit', kafkaErrors.abortable);
    await assert.rejects(
      pool.run((tx) => tx.send(rec('a'))),
      (err: unknown) => err instanceof TransactionAbortedError && err.cause instanceof KafkaClientError && err.cause.code === 120,
    );
    assert.deepEqual(cluster.kinds('tx-i1-0'), ['init', 'begin', 'send', 'commit', 'abort']);
    assert.deepEqual(cluster.abortedValues(), ['a']);
    await pool.run((tx) => tx.send(rec('b')));
    assert.deepEqual(cluster.committedValues(), ['b']);
    assert.equal(cluster.created('tx-i1-0'), 1);
    assert.equal(pool.stats().counters.aborted, 1);
    await closeAndCheck(pool, cluster);
  });

  it('a commit timeout retries the commit (never a blind abort) and succeeds', async () => {
    const cluster = new FakeCluster();
    const { events, seen } = recordingEvents();
    const pool = await startPool(cluster, { size: 1, events });
    cluster.failNext('commit', () => kafkaErrors.timedOut('commit'), { times: 2 });
    const result = await pool.run(async (tx) => {
      await tx.send(rec('a'));
      return 'done';
    });
    assert.equal(result.value, 'done');
    assert.deepEqual(cluster.kinds('tx-i1-0'), ['init', 'begin', 'send', 'commit', 'commit', 'commit']);
    assert.deepEqual(cluster.committedValues(), ['a']);
    assert.equal(pool.stats().counters.retries, 2);
    assert.deepEqual(seen.retried, [
      { slot: 0, step: 'commit' },
      { slot: 0, step: 'commit' },
    ]);
    assert.equal(cluster.created('tx-i1-0'), 1);
    await closeAndCheck(pool, cluster);
  });

  it('a commit that timed out but reached the broker is reported committed, exactly once', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    cluster.failNext('commit', () => kafkaErrors.timedOut('commit'), { commitApplied: true });
    await pool.run((tx) => tx.send(rec('a')));
    assert.deepEqual(cluster.committedValues(), ['a']);
    assert.equal(pool.stats().counters.committed, 1);
    await closeAndCheck(pool, cluster);
  });

  it('a commit failing past the retry deadline gives TransactionOutcomeUnknownError and replaces the slot', async () => {
    const cluster = new FakeCluster();
    const { events, seen } = recordingEvents();
    const pool = await startPool(cluster, { size: 1, events, retry: { deadlineMs: 40, initialBackoffMs: 2, maxBackoffMs: 5 } });
    const id = 'tx-i1-0';
    cluster.failNext('commit', () => kafkaErrors.timedOut('commit'), { times: Infinity, id, producer: 1 });
    await assert.rejects(
      pool.run((tx) => tx.send(rec('maybe'))),
      (err: unknown) =>
        err instanceof TransactionOutcomeUnknownError &&
        err.outcome === 'unknown' &&
        err.transactionalId === id &&
        err.cause instanceof KafkaClientError &&
        err.cause.code === -185,
    );
    assert.ok(cluster.callsOf('commit', { id }).length >= 2, 'the commit was retried before giving up');
    assert.equal(cluster.callsOf('abort', { id }).filter((c) => c.status === 'ok').length, 0, 'no abort succeeded');

    await waitFor(() => slotState(pool, 0) === 'idle' && cluster.created(id) === 2, { ...ON_FAKES, what: 'slot replaced with a new producer' });
    assert.equal(cluster.producers(id)[0]?.closed, true, 'the old producer is closed');
    assert.equal(cluster.current(id)?.state, 'ready');
    assert.equal(pool.stats().counters.outcomeUnknown, 1);
    assert.equal(pool.stats().counters.replacements, 1);
    assert.deepEqual(seen.replaced.map((r) => [r.slot, r.transactionalId, r.cause]), [[0, id, 'unknown-state']]);
    // The replacement's init aborted what the old producer left open.
    assert.deepEqual(cluster.abortedValues(), ['maybe']);
    const again = await pool.run(async (tx) => {
      await tx.send(rec('again'));
      return tx.transactionalId;
    });
    assert.equal(again.value, id);
    assert.deepEqual(cluster.committedValues(), ['again']);
    await closeAndCheck(pool, cluster);
  });

  it('a fatal error on commit replaces the producer; the caller learns the outcome is not committed', async () => {
    const cluster = new FakeCluster();
    const { events, seen } = recordingEvents();
    const pool = await startPool(cluster, { size: 1, events });
    cluster.failNext('commit', kafkaErrors.fatal);
    await assert.rejects(pool.run((tx) => tx.send(rec('a'))), (err: unknown) => err instanceof TransactionError);
    await waitFor(() => slotState(pool, 0) === 'idle' && cluster.created('tx-i1-0') === 2, { ...ON_FAKES, what: 'replaced' });
    assert.equal(seen.replacing[0]?.cause, 'fatal');
    assert.equal(cluster.producers('tx-i1-0')[0]?.closed, true);
    await pool.run((tx) => tx.send(rec('b')));
    assert.deepEqual(cluster.committedValues(), ['b']);
    await closeAndCheck(pool, cluster);
  });
});

describe('sendOffsets fails', () => {
  it('a timed-out sendOffsets is retried inside the same transaction', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    cluster.failNext('sendOffsets', () => kafkaErrors.timedOut('sendOffsets'));
    await pool.run(async (tx) => {
      await tx.send(rec('a'));
      await tx.sendOffsets([{ topic: 'in', partition: 0, offset: 5 }], {});
    });
    assert.deepEqual(cluster.kinds('tx-i1-0'), ['init', 'begin', 'send', 'sendOffsets', 'sendOffsets', 'commit']);
    assert.deepEqual(cluster.transactions[0]?.offsets, [[{ topic: 'in', partition: 0, offset: 5 }]]);
    assert.equal(cluster.transactions[0]?.state, 'committed');
    await closeAndCheck(pool, cluster);
  });

  it('an abortable sendOffsets error aborts the transaction even if the work swallows it', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    cluster.failNext('sendOffsets', kafkaErrors.abortable);
    await assert.rejects(
      pool.run(async (tx) => {
        await tx.send(rec('a'));
        await tx.sendOffsets([{ topic: 'in', partition: 0, offset: 5 }], {}).catch(() => undefined);
      }),
      TransactionAbortedError,
    );
    assert.deepEqual(cluster.committedValues(), []);
    assert.equal(cluster.created('tx-i1-0'), 1);
    await closeAndCheck(pool, cluster);
  });
});

describe('begin fails', () => {
  it('CONCURRENT_TRANSACTIONS on begin is retried with backoff, then the transaction goes through', async () => {
    const cluster = new FakeCluster();
    const { events, seen } = recordingEvents();
    const pool = await startPool(cluster, { size: 1, events, retry: { deadlineMs: 2000, initialBackoffMs: 40, maxBackoffMs: 80 } });
    cluster.failNext('begin', kafkaErrors.concurrentTransactions, { times: 2 });
    let workRuns = 0;
    const result = await pool.run(async (tx) => {
      workRuns++;
      await tx.send(rec('a'));
      return 'ok';
    });
    assert.equal(result.value, 'ok');
    assert.equal(workRuns, 1);
    const begins = cluster.callsOf('begin');
    assert.equal(begins.length, 3);
    // A backoff, not a hot loop: each retry waits a good part of initialBackoffMs at least.
    for (let i = 1; i < begins.length; i++) {
      const gap = (begins[i]?.startedAt ?? 0) - (begins[i - 1]?.startedAt ?? 0);
      assert.ok(gap >= 10, `begin retry ${i} came ${gap.toFixed(1)} ms after the previous one`);
    }
    assert.deepEqual(seen.retried.map((r) => r.step), ['begin', 'begin']);
    assert.equal(cluster.created('tx-i1-0'), 1);
    await closeAndCheck(pool, cluster);
  });

  it('begin failing past the deadline never runs the work and reports nothing committed', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1, retry: { deadlineMs: 30, initialBackoffMs: 2, maxBackoffMs: 5 } });
    cluster.failNext('begin', kafkaErrors.concurrentTransactions, { times: Infinity, producer: 1 });
    let ran = false;
    await assert.rejects(
      pool.run(async () => {
        ran = true;
      }),
      (err: unknown) => err instanceof TransactionError && err.outcome === 'aborted',
    );
    assert.equal(ran, false);
    cluster.clearFaults();
    await pool.run((tx) => tx.send(rec('later')));
    assert.deepEqual(cluster.committedValues(), ['later']);
    await closeAndCheck(pool, cluster);
  });
});

describe('fenced or fatal producers are replaced in the same slot with the same id', () => {
  it('fencing is noticed, the slot goes replacing -> idle with the same id, other slots keep serving', async () => {
    const cluster = new FakeCluster();
    const { events, seen } = recordingEvents();
    const pool = await startPool(cluster, { size: 2, events });

    // Occupy one slot; the other one is the victim.
    const gate = deferred();
    let otherSlot = -1;
    const onOther = pool.run(async (tx) => {
      otherSlot = tx.slot;
      await tx.send(rec('other-first'));
      await gate.promise;
      return tx.slot;
    });
    await waitFor(() => otherSlot >= 0, { ...ON_FAKES, what: 'one slot busy' });
    const victimSlot = 1 - otherSlot;
    const victim = `tx-i1-${victimSlot}`;
    cluster.fence(victim); // another process with our prefix and instance id initialised this id
    const replacementInit = cluster.hold('init', { id: victim, producer: 2 });

    const fencedRun = pool.run(async (tx) => {
      await tx.send(rec('fenced'));
      return tx.slot;
    });
    await assert.rejects(fencedRun, (err: unknown) => err instanceof TransactionError && err.outcome === 'aborted' && err.transactionalId === victim);
    gate.resolve();
    assert.equal((await onOther).value, otherSlot);

    const held = await replacementInit.next();
    const stats = pool.stats();
    assert.equal(slotState(pool, victimSlot), 'replacing');
    assert.equal(stats.replacing, 1);
    assert.equal(stats.size, 2);
    assert.equal(stats.slots.find((s) => s.slot === victimSlot)?.transactionalId, victim);
    assert.equal(cluster.producers(victim)[0]?.closed, true, 'the fenced producer is closed');
    assert.equal(seen.replacing[0]?.cause, 'fenced');
    assert.equal(seen.replacing[0]?.transactionalId, victim);

    // The other slot keeps serving while the victim is replaced.
    for (let i = 0; i < 3; i++) {
      const r = await pool.run(async (tx) => {
        await tx.send(rec(`during-${i}`));
        return tx.slot;
      });
      assert.equal(r.value, otherSlot);
    }

    held.release();
    await waitFor(() => slotState(pool, victimSlot) === 'idle', { ...ON_FAKES, what: 'victim slot idle again' });
    assert.deepEqual(seen.replaced, [{ slot: victimSlot, transactionalId: victim, cause: 'fenced' }]);
    assert.equal(cluster.created(victim), 2);
    assert.equal(cluster.created(`tx-i1-${otherSlot}`), 1);
    assert.deepEqual(cluster.ids().sort(), ['tx-i1-0', 'tx-i1-1'], 'no new transactional ids appear');
    assert.equal(pool.stats().slots.find((s) => s.slot === victimSlot)?.replacements, 1);

    // Both slots serve again.
    const gate2 = deferred();
    const both = [0, 1].map(() =>
      pool.run(async (tx) => {
        await tx.send(rec(`both-${tx.slot}`));
        await gate2.promise;
        return tx.slot;
      }),
    );
    await waitFor(() => pool.stats().busy === 2, { ...ON_FAKES, what: 'both busy' });
    gate2.resolve();
    assert.deepEqual((await Promise.all(both)).map((r) => r.value).sort(), [0, 1]);
    assert.ok(!cluster.committedValues().includes('fenced'));
    await closeAndCheck(pool, cluster);
  });

  it('a fatal error in begin replaces the producer and the caller never runs work on it', async () => {
    const cluster = new FakeCluster();
    const { events, seen } = recordingEvents();
    const pool = await startPool(cluster, { size: 1, events });
    cluster.failNext('begin', kafkaErrors.fatal);
    let ran = false;
    await assert.rejects(
      pool.run(async () => {
        ran = true;
      }),
      (err: unknown) => err instanceof TransactionError && err.outcome === 'aborted',
    );
    assert.equal(ran, false);
    await waitFor(() => slotState(pool, 0) === 'idle' && cluster.created('tx-i1-0') === 2, { ...ON_FAKES, what: 'replaced' });
    assert.deepEqual(seen.replaced.map((r) => r.cause), ['fatal']);
    await pool.run((tx) => tx.send(rec('b')));
    await closeAndCheck(pool, cluster);
  });

  it('a fatal error on abort (after work threw) still reports aborted, and the producer is replaced', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    cluster.failNext('abort', kafkaErrors.fenced);
    const boom = new Error('work failed');
    await assert.rejects(
      pool.run(async (tx) => {
        await tx.send(rec('x'));
        throw boom;
      }),
      // The pool may report the fencing rather than the work's error: both mean "aborted".
      (err: unknown) => err instanceof TransactionAbortedError && err.outcome === 'aborted',
    );
    await waitFor(() => slotState(pool, 0) === 'idle' && cluster.created('tx-i1-0') === 2, { ...ON_FAKES, what: 'replaced' });
    assert.deepEqual(cluster.committedValues(), []);
    assert.deepEqual(cluster.abortedValues(), ['x'], 'the replacement init aborted the left-over transaction');
    await closeAndCheck(pool, cluster);
  });

  it('a replacement whose init fails is retried later until the slot is back', async () => {
    const cluster = new FakeCluster();
    const { events, seen } = recordingEvents();
    const pool = await startPool(cluster, { size: 2, events, replaceBackoffMs: 5 });
    const gate = deferred();
    let otherSlot = -1;
    const onOther = pool.run(async (tx) => {
      otherSlot = tx.slot;
      await gate.promise;
      return tx.slot;
    });
    await waitFor(() => otherSlot >= 0, { ...ON_FAKES, what: 'one slot busy' });
    const victimSlot = 1 - otherSlot;
    const victim = `tx-i1-${victimSlot}`;
    // The first two attempts to bring the slot back fail (broker unreachable).
    cluster.failNext('init', () => kafkaErrors.timedOut('init'), { id: victim, times: 2 });
    cluster.failNext('send', kafkaErrors.fenced, { id: victim, producer: 1 });
    await assert.rejects(pool.run((tx) => tx.send(rec('fenced'))), TransactionError);
    gate.resolve();
    await onOther;
    await waitFor(() => slotState(pool, victimSlot) === 'idle', { ...ON_FAKES, timeoutMs: 3000, what: 'victim slot back after failed inits' });
    assert.equal(cluster.callsOf('init', { id: victim }).filter((c) => c.status === 'error').length, 2);
    const live = cluster.producers(victim).filter((p) => !p.closed);
    assert.equal(live.length, 1, 'only the working producer of the id is left open');
    assert.equal(live[0]?.state, 'ready');
    assert.equal(seen.replaced.length, 1);
    // The slot serves again.
    const gate2 = deferred();
    const holdOther = pool.run(async () => gate2.promise);
    const r = await pool.run(async (tx) => {
      await tx.send(rec('back'));
      return tx.slot;
    });
    gate2.resolve();
    await holdOther;
    assert.equal(r.value, victimSlot);
    await closeAndCheck(pool, cluster);
  });

  it('fencing on the first commit attempt is an unknown outcome, not an abort (the client retried an EndTxn that may have committed)', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    cluster.failNext('commit', kafkaErrors.fenced);
    const err = await pool.run((tx) => tx.send(rec('a'))).then(
      () => assert.fail('the commit was fenced'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TransactionOutcomeUnknownError, `got ${String(err)}`);
    await pool.run((tx) => tx.send(rec('b')));
    await closeAndCheck(pool, cluster);
  });

  it('a waiter queued while the only slot is replaced is served by the replacement', async () => {
    const cluster = new FakeCluster();
    const pool = await startPool(cluster, { size: 1 });
    const init2 = cluster.hold('init', { producer: 2 });
    cluster.failNext('commit', kafkaErrors.fenced);
    await assert.rejects(pool.run((tx) => tx.send(rec('a'))), TransactionError);
    const held = await init2.next();
    const waiter = track(pool.run((tx) => tx.send(rec('b'))));
    await flush();
    assert.equal(waiter.settled(), false);
    assert.equal(pool.stats().waiting, 1);
    held.release();
    await waiter.promise;
    assert.deepEqual(cluster.committedValues(), ['b']);
    await closeAndCheck(pool, cluster);
  });
});
