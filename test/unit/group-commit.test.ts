// Group commit over the real pool and the scripted fake cluster: batching under load only,
// per-request offsets, poison isolation, waiting callers that leave, and draining on close.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { AcquireAbortedError, PoolClosedError, TransactionAbortedError, TransactionOutcomeUnknownError } from '../../src/errors.js';
import { GroupCommitter } from '../../src/gateway/group-commit/group-commit.js';
import { ParticipantRejection, type BatchParticipant } from '../../src/gateway/group-commit/participant.js';
import { RecordRejectedError } from '../../src/errors.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import { KafkaClientError, type RecordMetadata } from '../../src/pool/producer-port.js';
import type { Transaction } from '../../src/pool/types.js';
import { FakeCluster, fakePoolOptions, flush, kafkaErrors, rec, track, type Hold } from '../support/fake-producer.js';
import { ON_FAKES, waitFor } from '../support/wait.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: { size?: number; maxBatchRequests?: number; maxBatchRecords?: number; maxBatchBytes?: number } = {}) {
  const cluster = new FakeCluster();
  const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { size: opts.size ?? 1 }));
  await pool.start();
  const gc = new GroupCommitter({ pool, maxBatchRequests: opts.maxBatchRequests, maxBatchRecords: opts.maxBatchRecords, maxBatchBytes: opts.maxBatchBytes, failureSettleMs: 200 });
  cleanups.push(async () => {
    await gc.close({ timeoutMs: 1000 });
    await pool.close();
  });
  return { cluster, pool, gc };
}

/** Committed transactions as lists of record values, in commit order. */
function committedBatches(cluster: FakeCluster): string[][] {
  return cluster.transactions.filter((t) => t.state === 'committed').map((t) => t.records.map((r) => r.value?.toString() ?? ''));
}

function valuesAt(cluster: FakeCluster, md: RecordMetadata[]): string[] {
  return md.map((m) => {
    const r = cluster.records.find((x) => x.topic === m.topic && x.partition === m.partition && x.offset === m.offset);
    assert.ok(r, `no record at ${m.topic}/${m.partition}@${m.offset}`);
    assert.equal(r.state, 'committed');
    return r.value?.toString() ?? '';
  });
}

/** Holds the first transaction's commit so that later requests have to wait for the producer. */
async function occupyProducer(cluster: FakeCluster, gc: GroupCommitter): Promise<{ first: Promise<RecordMetadata[]>; commits: Hold }> {
  const commits = cluster.hold('commit');
  const first = gc.submit({ records: [rec('first')] });
  await commits.next();
  return { first, commits };
}

/** librdkafka's delivery timeout (message.timeout.ms), as a delivery report carries it. */
const msgTimedOut = () => new KafkaClientError('Local: Message timed out', { code: -192, codeName: '_MSG_TIMED_OUT', fatal: false, retriable: false, txnRequiresAbort: false });

describe('group commit', () => {
  it('runs a request alone and at once when a producer is free (no added delay)', async () => {
    const { cluster, gc } = await setup({ size: 2 });
    const sends = cluster.hold('send');
    const r = track(gc.submit({ records: [rec('a')] }));
    // No timer may stand between submit and the send: the send is there after a few turns of the loop.
    await flush();
    assert.equal(sends.count, 1);
    sends.stop();
    await r.promise;
    for (let i = 0; i < 5; i++) await gc.submit({ records: [rec(`seq${i}`)] });
    assert.deepEqual(committedBatches(cluster), [['a'], ['seq0'], ['seq1'], ['seq2'], ['seq3'], ['seq4']]);
    const s = gc.stats();
    assert.equal(s.transactions, 6);
    assert.equal(s.requests, 6);
    assert.equal(s.batchedRequests, 0);
  });

  it('packs the requests that wait for a producer into one transaction, each getting its own offsets in order', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const waiting = Array.from({ length: 5 }, (_, i) =>
      gc.submit({ records: [rec(`r${i}-0`, 'x'), rec(`r${i}-1`, 'y'), rec(`r${i}-2`, 'x')] }),
    );
    await flush();
    assert.equal(gc.stats().openBatches, 1);
    assert.equal(gc.stats().pendingRequests, 6);
    commits.stop();
    await first;
    const results = await Promise.all(waiting);
    results.forEach((md, i) => {
      assert.deepEqual(valuesAt(cluster, md), [`r${i}-0`, `r${i}-1`, `r${i}-2`]);
      assert.deepEqual(md.map((m) => m.topic), ['x', 'y', 'x']);
    });
    const batches = committedBatches(cluster);
    assert.equal(batches.length, 2);
    assert.equal(batches[1]!.length, 15);
    const s = gc.stats();
    assert.deepEqual([s.transactions, s.requests, s.batchedRequests, s.pendingRequests, s.openBatches], [2, 6, 5, 0, 0]);
  });

  it('respects maxBatchRequests and maxBatchRecords', async () => {
    const { cluster, gc } = await setup({ size: 1, maxBatchRequests: 2, maxBatchRecords: 3 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const waiting = [
      gc.submit({ records: [rec('a')] }),
      gc.submit({ records: [rec('b')] }), // full by requests
      gc.submit({ records: [rec('c1'), rec('c2')] }),
      gc.submit({ records: [rec('d1'), rec('d2')] }), // would make 4 records
      gc.submit({ records: [rec('e1'), rec('e2'), rec('e3'), rec('e4')] }), // larger than a batch: alone
    ];
    await flush();
    assert.equal(gc.stats().openBatches, 4);
    commits.stop();
    await first;
    await Promise.all(waiting);
    assert.deepEqual(committedBatches(cluster).slice(1), [['a', 'b'], ['c1', 'c2'], ['d1', 'd2'], ['e1', 'e2', 'e3', 'e4']]);
  });

  it('fails only the poisoned request; its batch-mates commit without it, exactly once', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    cluster.failNext('send', kafkaErrors.msgSizeTooLarge, { where: (c) => c.record?.value?.toString() === 'poison' });
    const a = gc.submit({ records: [rec('a0'), rec('a1')] });
    const p = track(gc.submit({ records: [rec('p0'), rec('poison'), rec('p2')] }));
    const b = gc.submit({ records: [rec('b0')] });
    commits.stop();
    await first;
    assert.deepEqual(valuesAt(cluster, await a), ['a0', 'a1']);
    assert.deepEqual(valuesAt(cluster, await b), ['b0']);
    await assert.rejects(p.promise, (err: unknown) => {
      assert.ok(err instanceof RecordRejectedError);
      assert.equal(err.code, 'TXGATE_RECORD_REJECTED');
      assert.equal(err.recordIndex, 1);
      assert.equal(err.kafkaCode, 10);
      assert.equal(err.kafkaCodeName, 'MSG_SIZE_TOO_LARGE');
      return true;
    });
    const committed = cluster.committedValues();
    assert.deepEqual(committed.filter((v) => v !== 'first').sort(), ['a0', 'a1', 'b0']);
    assert.equal(cluster.recordsIn('committed').filter((r) => r.value?.toString().startsWith('p')).length, 0);
    assert.deepEqual(cluster.violations, []);
  });

  it('when a refusal hits several requests (one produce batch), retries each alone to find the culprit', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    // Kafka refuses a whole produce batch: an innocent record sharing it fails with the same code.
    // The poisoned record is refused every time, the innocent one only while it shares the batch.
    cluster.failNext('send', kafkaErrors.msgSizeTooLarge, { where: (c) => c.record?.value?.toString() === 'poison', times: 100 });
    cluster.failNext('send', kafkaErrors.msgSizeTooLarge, { where: (c) => c.record?.value?.toString() === 'innocent', times: 1 });
    const innocent = gc.submit({ records: [rec('innocent')] });
    const poisoned = track(gc.submit({ records: [rec('poison')] }));
    const clean = gc.submit({ records: [rec('clean')] });
    commits.stop();
    await first;
    assert.deepEqual(valuesAt(cluster, await clean), ['clean']);
    assert.deepEqual(valuesAt(cluster, await innocent), ['innocent']);
    await assert.rejects(poisoned.promise, RecordRejectedError);
    assert.deepEqual(cluster.committedValues().sort(), ['clean', 'first', 'innocent']);
    // The innocent and the poisoned request each ran once more, alone, after the shared attempt.
    const sendsOf = (v: string) => cluster.callsOf('send', { where: (c) => c.record?.value?.toString() === v }).length;
    assert.deepEqual([sendsOf('innocent'), sendsOf('poison'), sendsOf('clean')], [2, 2, 2]);
    assert.equal(cluster.transactions.filter((t) => t.state === 'committed').length, 3);
  });

  it('fails every request of a batch with the pool error when the failure belongs to no single request', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const a = track(gc.submit({ records: [rec('a')] }));
    const b = track(gc.submit({ records: [rec('b')] }));
    // The batch's commit: the broker times out until the retry deadline; the outcome is unknown.
    cluster.failNext('commit', () => kafkaErrors.timedOut('commit'), { times: 1000 });
    commits.stop();
    await first;
    await assert.rejects(a.promise, TransactionOutcomeUnknownError);
    await assert.rejects(b.promise, TransactionOutcomeUnknownError);
  });

  it('fails the whole batch, aborted, when a send fails for a reason of its own (not the record)', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    cluster.failNext('send', kafkaErrors.abortable, { where: (c) => c.record?.value?.toString() === 'a' });
    const a = track(gc.submit({ records: [rec('a')] }));
    const b = track(gc.submit({ records: [rec('b')] }));
    commits.stop();
    await first;
    await assert.rejects(a.promise, TransactionAbortedError);
    await assert.rejects(b.promise, TransactionAbortedError);
    assert.deepEqual(cluster.committedValues(), ['first']);
  });

  it('runs a batch again when its only failures are purged deliveries, but not forever', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    cluster.failNext('send', kafkaErrors.purged, { where: (c) => c.record?.value?.toString() === 'a', times: 2 });
    cluster.failNext('send', kafkaErrors.purged, { where: (c) => c.record?.value?.toString() === 'never', times: 100 });
    const a = gc.submit({ records: [rec('a')] });
    const b = gc.submit({ records: [rec('b')] });
    commits.stop();
    await first;
    assert.deepEqual(valuesAt(cluster, await a), ['a']);
    assert.deepEqual(valuesAt(cluster, await b), ['b']);
    await assert.rejects(gc.submit({ records: [rec('never')] }), TransactionAbortedError);
    assert.equal(cluster.callsOf('send', { where: (c) => c.record?.value?.toString() === 'never' }).length, 4);
  });

  it('runs batch-mates again without the request whose record timed out (a deleted topic), which fails aborted', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    cluster.failNext('send', msgTimedOut, { where: (c) => c.record?.value?.toString() === 'gone', times: 100 });
    const a = gc.submit({ records: [rec('a')] });
    const gone = track(gc.submit({ records: [rec('ok'), rec('gone')] }));
    const b = gc.submit({ records: [rec('b')] });
    commits.stop();
    await first;
    assert.deepEqual(valuesAt(cluster, await a), ['a']);
    assert.deepEqual(valuesAt(cluster, await b), ['b']);
    await assert.rejects(gone.promise, (e: Error) => e instanceof TransactionAbortedError && /record 1 \(topic t/.test(e.message));
    assert.deepEqual(cluster.committedValues().sort(), ['a', 'b', 'first']);
    // one attempt: a retry would hold a producer for another message.timeout.ms
    assert.equal(cluster.callsOf('send', { where: (c) => c.record?.value?.toString() === 'gone' }).length, 1);
    assert.equal(cluster.callsOf('send', { where: (c) => c.record?.value?.toString() === 'a' }).length, 2);
  });

  it('fails the whole batch when every request timed out (the cluster, not a partition)', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    cluster.failNext('send', msgTimedOut, { where: (c) => ['a', 'b'].includes(c.record?.value?.toString() ?? ''), times: 100 });
    const a = track(gc.submit({ records: [rec('a')] }));
    const b = track(gc.submit({ records: [rec('b')] }));
    commits.stop();
    await first;
    await assert.rejects(a.promise, TransactionAbortedError);
    await assert.rejects(b.promise, TransactionAbortedError);
    assert.equal(cluster.callsOf('send', { where: (c) => c.record?.value?.toString() === 'a' }).length, 1, 'not run again');
  });

  it('bounds a batch by bytes, and still runs a single request larger than the bound alone', async () => {
    const { cluster, gc } = await setup({ size: 1, maxBatchBytes: 2_500 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const kb = (tag: string) => rec(tag + 'x'.repeat(999));
    const waiting = [gc.submit({ records: [kb('a')] }), gc.submit({ records: [kb('b')] }), gc.submit({ records: [kb('c')] }), gc.submit({ records: [rec('big' + 'x'.repeat(4_000))] })];
    await flush();
    assert.equal(gc.stats().openBatches, 3, 'a+b (2,000 bytes), then c, then the oversized one alone');
    commits.stop();
    await first;
    await Promise.all(waiting);
    assert.deepEqual(committedBatches(cluster).map((b) => b.map((v) => v.slice(0, 3).replace(/x+$/, ''))), [['fir'], ['a', 'b'], ['c'], ['big']]);
  });

  it('lets a waiting caller leave (AcquireAbortedError) without touching its batch-mates', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const leaving = new AbortController();
    const a = track(gc.submit({ records: [rec('a')], signal: leaving.signal }));
    const b = gc.submit({ records: [rec('b')] });
    leaving.abort(new Error('client went away'));
    await assert.rejects(a.promise, AcquireAbortedError);
    commits.stop();
    await first;
    await b;
    assert.deepEqual(cluster.committedValues().sort(), ['b', 'first']);
  });

  it('gives the pool its queue place back when every request of a waiting batch left', async () => {
    const { cluster, pool, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const leaving = new AbortController();
    const a = track(gc.submit({ records: [rec('a')], signal: leaving.signal }));
    await flush();
    assert.equal(pool.stats().waiting, 1);
    leaving.abort();
    await assert.rejects(a.promise, AcquireAbortedError);
    await waitFor(() => pool.stats().waiting === 0, { ...ON_FAKES, what: 'the emptied batch to leave the pool queue' });
    assert.equal(gc.stats().openBatches, 0);
    commits.stop();
    await first;
  });

  it('never abandons a started transaction when the caller leaves', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const sends = cluster.hold('send');
    const leaving = new AbortController();
    const a = gc.submit({ records: [rec('a')], signal: leaving.signal });
    await sends.next();
    leaving.abort();
    sends.stop();
    assert.deepEqual(valuesAt(cluster, await a), ['a']);
  });

  it('close() refuses new requests and waits for the accepted ones', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const a = gc.submit({ records: [rec('a')] });
    const b = gc.submit({ records: [rec('b')] });
    const closed = track(gc.close({ timeoutMs: 5000 }));
    await assert.rejects(gc.submit({ records: [rec('late')] }), PoolClosedError);
    await flush();
    assert.equal(closed.settled(), false);
    commits.stop();
    await Promise.all([first, a, b, closed.promise]);
    assert.deepEqual(cluster.committedValues().sort(), ['a', 'b', 'first']);
  });

  it('close() past its deadline fails what still waits for a producer, never a running transaction', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const waiting = track(gc.submit({ records: [rec('a')] }));
    const closed = gc.close({ timeoutMs: 20 });
    await assert.rejects(waiting.promise, PoolClosedError);
    commits.stop();
    await closed;
    await first;
    assert.deepEqual(cluster.committedValues(), ['first']);
  });

  it('close() past its deadline does not run an aborted batch\'s survivors again: they fail PoolClosedError, nothing written', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const isGone = (c: { record?: { value?: Buffer | null } }) => c.record?.value?.toString() === 'gone';
    cluster.failNext('send', msgTimedOut, { where: isGone, times: 100 });
    const goneSend = cluster.hold('send', { where: isGone, times: 1 });
    const a = track(gc.submit({ records: [rec('a')] }));
    const gone = track(gc.submit({ records: [rec('gone')] }));
    commits.stop();
    await first;
    await goneSend.next();
    // The batch [a, gone] is running; c waits for the producer, so its failure marks the deadline.
    const c = track(gc.submit({ records: [rec('c')] }));
    const closed = gc.close({ timeoutMs: 20 });
    await assert.rejects(c.promise, PoolClosedError);
    goneSend.releaseAll();
    await assert.rejects(gone.promise, TransactionAbortedError);
    await assert.rejects(a.promise, PoolClosedError);
    await closed;
    assert.deepEqual(cluster.committedValues(), ['first']);
    assert.equal(cluster.callsOf('send', { where: (call) => call.record?.value?.toString() === 'a' }).length, 1, 'not run again');
  });

  it('runs participant hooks: begin first in the transaction, finish after the data, committed after the commit', async () => {
    const { cluster, gc } = await setup({ size: 1 });
    const { first, commits } = await occupyProducer(cluster, gc);
    const events: string[] = [];
    const participant = (name: string, reject = false): BatchParticipant => ({
      async begin(tx: Transaction) {
        events.push(`${name}:begin`);
        await tx.send(rec(`${name}-claim`, 'idem'));
        if (reject) throw new ParticipantRejection(new Error(`${name} lost its claim`));
      },
      async finish(tx: Transaction, records: RecordMetadata[]) {
        events.push(`${name}:finish:${valuesPending(cluster, records).join(',')}`);
        await tx.send(rec(`${name}-outcome`, 'idem'));
      },
      committed: () => events.push(`${name}:committed`),
      aborted: () => events.push(`${name}:aborted`),
    });
    const a = gc.submit({ records: [rec('a')], participant: participant('A') });
    const x = track(gc.submit({ records: [rec('x')], participant: participant('X', true) }));
    commits.stop();
    await first;
    await assert.rejects(x.promise, /X lost its claim/);
    assert.deepEqual(valuesAt(cluster, await a), ['a']);
    // First attempt (A and X) aborted because of X; A retried alone and committed.
    assert.deepEqual(events, ['A:begin', 'X:begin', 'A:aborted', 'X:aborted', 'A:begin', 'A:finish:a', 'A:committed']);
    const last = cluster.transactions.filter((t) => t.state === 'committed').at(-1)!;
    assert.deepEqual(last.records.map((r) => r.value?.toString()), ['A-claim', 'a', 'A-outcome']);
  });
});

function valuesPending(cluster: FakeCluster, md: RecordMetadata[]): string[] {
  return md.map((m) => cluster.records.find((x) => x.topic === m.topic && x.partition === m.partition && x.offset === m.offset)?.value?.toString() ?? '?');
}
