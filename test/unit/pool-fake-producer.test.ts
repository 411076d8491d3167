// The pool's unit tests are only as good as the fake under them: these pin down its Kafka semantics.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KafkaClientError } from '../../src/pool/producer-port.js';
import { FakeCluster, flush, kafkaErrors, track, type FakeProducer } from '../support/fake-producer.js';

const rec = (value: string, topic = 't') => ({ topic, value: Buffer.from(value) });

async function ready(cluster: FakeCluster, id = 'p-i-0'): Promise<FakeProducer> {
  const p = cluster.factory(id) as FakeProducer;
  await p.init(1000);
  return p;
}

function isKafkaError(code: number, flags: Partial<Pick<KafkaClientError, 'fatal' | 'retriable' | 'txnRequiresAbort'>> = {}) {
  return (err: unknown) => {
    assert.ok(err instanceof KafkaClientError, `expected a KafkaClientError, got ${String(err)}`);
    assert.equal(err.code, code);
    for (const [k, v] of Object.entries(flags)) assert.equal(err[k as keyof typeof flags], v, k);
    return true;
  };
}

describe('FakeCluster', () => {
  it('commits make records visible, aborts never do, and metadata carries offsets', async () => {
    const cluster = new FakeCluster({ partitions: 1 });
    const p = await ready(cluster);
    await p.begin();
    const m1 = await p.send(rec('a'));
    const m2 = await p.send(rec('b'));
    assert.deepEqual([m1.offset, m2.offset], ['0', '1']);
    assert.deepEqual(cluster.committedValues('t'), []);
    assert.deepEqual(cluster.pendingValues('t'), ['a', 'b']);
    await p.commit(1000);
    await p.begin();
    await p.send(rec('c'));
    await p.abort(1000);
    assert.deepEqual(cluster.committedValues('t'), ['a', 'b']);
    assert.deepEqual(cluster.abortedValues('t'), ['c']);
    assert.deepEqual(cluster.kinds('p-i-0'), ['init', 'begin', 'send', 'send', 'commit', 'begin', 'send', 'abort']);
    assert.deepEqual(cluster.violations, []);
  });

  it('refuses a second begin and sends outside a transaction, and records the misuse', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster);
    await assert.rejects(p.send(rec('x')), isKafkaError(-172));
    await p.begin();
    await assert.rejects(p.begin(), isKafkaError(-172));
    assert.equal(cluster.violations.length, 2);
  });

  it('flags begin/commit overlapping another call on the same producer', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster);
    await p.begin();
    const hold = cluster.hold('send');
    const sending = p.send(rec('a'));
    await hold.next();
    // The send is still parked when commit starts.
    const committing = p.commit(1000);
    assert.match(cluster.violations[0] ?? '', /commit while send in flight/);
    await committing;
    hold.stop();
    // The commit went first, so the late record is outside any transaction.
    await assert.rejects(sending, isKafkaError(-172));
  });

  // With a scripted failure too: a delivery outlived by its transaction's abort is purged with
  // it, and its own failure dooms nothing that comes after.
  for (const scripted of [undefined, kafkaErrors.msgSizeTooLarge]) {
    it(`abort purges deliveries still in flight${scripted ? ' (one scripted to fail)' : ''}: they fail, are never committed, and block nothing`, async () => {
      const cluster = new FakeCluster();
      const p = await ready(cluster);
      await p.begin();
      if (scripted) cluster.failNext('send', scripted());
      const hold = cluster.hold('send', { times: 1 });
      const late = p.send(rec('late'));
      await hold.next();
      await p.abort(1000);
      await p.begin();
      hold.releaseAll();
      await assert.rejects(late, isKafkaError(-152));
      await p.send(rec('next'));
      await p.commit(1000);
      assert.deepEqual(cluster.committedValues(), ['next']);
      assert.deepEqual(cluster.violations, []);
    });
  }

  it('init of the same id fences the older producer and aborts what it had open', async () => {
    const cluster = new FakeCluster();
    const old = await ready(cluster, 'x');
    await old.begin();
    await old.send(rec('zombie'));
    const fresh = await ready(cluster, 'x');
    assert.equal(cluster.created('x'), 2);
    assert.equal(cluster.current('x'), fresh);
    assert.deepEqual(cluster.abortedValues(), ['zombie']);
    await assert.rejects(old.commit(1000), isKafkaError(90, { fatal: true }));
    // Once fatal, always fatal.
    await assert.rejects(old.abort(1000), isKafkaError(90, { fatal: true }));
    await fresh.begin();
    await fresh.send(rec('ok'));
    await fresh.commit(1000);
    assert.deepEqual(cluster.committedValues(), ['ok']);
  });

  it('fence() acts like another process: begin is local, the next broker call fails', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster, 'x');
    cluster.fence('x');
    await p.begin();
    await assert.rejects(p.send(rec('a')), isKafkaError(90, { fatal: true }));
    assert.equal(p.state, 'fatal');
  });

  it('a timed-out commit can be retried but not aborted', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster);
    cluster.failNext('commit', kafkaErrors.timedOut, { times: 1 });
    await p.begin();
    await p.send(rec('a'));
    await assert.rejects(p.commit(1000), isKafkaError(-185, { retriable: true }));
    await assert.rejects(p.abort(1000), isKafkaError(-173));
    await p.commit(1000);
    assert.deepEqual(cluster.committedValues(), ['a']);
  });

  it('commitApplied: the broker committed although the client saw a timeout', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster);
    cluster.failNext('commit', kafkaErrors.timedOut, { commitApplied: true });
    await p.begin();
    await p.send(rec('a'));
    await assert.rejects(p.commit(1000));
    assert.deepEqual(cluster.committedValues(), ['a']);
    await p.commit(1000);
    assert.deepEqual(cluster.committedValues(), ['a']);
  });

  it('an abortable commit error forbids commit until abort; the producer stays usable', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster);
    cluster.failNext('commit', kafkaErrors.abortable);
    await p.begin();
    await p.send(rec('a'));
    await assert.rejects(p.commit(1000), isKafkaError(120, { txnRequiresAbort: true }));
    await assert.rejects(p.commit(1000), isKafkaError(120, { txnRequiresAbort: true }));
    await p.abort(1000);
    await p.begin();
    await p.send(rec('b'));
    await p.commit(1000);
    assert.deepEqual(cluster.committedValues(), ['b']);
    assert.deepEqual(cluster.abortedValues(), ['a']);
  });

  it('a failed delivery makes the transaction abortable', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster);
    cluster.failNext('send', kafkaErrors.msgSizeTooLarge);
    await p.begin();
    await assert.rejects(p.send(rec('big')), isKafkaError(10));
    await assert.rejects(p.commit(1000), isKafkaError(10, { txnRequiresAbort: true }));
    await p.abort(1000);
  });

  it('scripted faults fire in call order, for the filtered id/producer only, then stop', async () => {
    const cluster = new FakeCluster();
    const a = await ready(cluster, 'a');
    const b = await ready(cluster, 'b');
    cluster.failNext('begin', kafkaErrors.concurrentTransactions, { id: 'b', times: 2 });
    await a.begin();
    await assert.rejects(b.begin(), isKafkaError(51, { retriable: true }));
    await assert.rejects(b.begin(), isKafkaError(51, { retriable: true }));
    await b.begin();
    assert.deepEqual(cluster.violations, []);
  });

  it('a fatal fault leaves the producer fatal; close never throws; calls after close are misuse', async () => {
    const cluster = new FakeCluster();
    const p = await ready(cluster);
    cluster.failNext('begin', kafkaErrors.fatal);
    await assert.rejects(p.begin(), isKafkaError(53, { fatal: true }));
    await assert.rejects(p.begin(), isKafkaError(53, { fatal: true }));
    await p.close(100);
    assert.ok(p.closed);
    await assert.rejects(p.begin(), isKafkaError(-197));
    assert.match(cluster.violations.at(-1) ?? '', /after close/);
  });

  it('holds park calls until released or failed, in arrival order', async () => {
    const cluster = new FakeCluster();
    const hold = cluster.hold('init');
    const p1 = cluster.factory('a');
    const p2 = cluster.factory('b');
    const i1 = track(p1.init(100));
    const i2 = track(p2.init(100));
    const h1 = await hold.next();
    const h2 = await hold.next();
    assert.deepEqual([h1.call.transactionalId, h2.call.transactionalId], ['a', 'b']);
    await flush();
    assert.equal(i1.settled() || i2.settled(), false);
    h2.fail(kafkaErrors.timedOut('init'));
    await assert.rejects(i2.promise, isKafkaError(-185));
    assert.equal(i1.settled(), false);
    h1.release();
    await i1.promise;
    // A failed (non-fatal) init can be retried.
    hold.stop();
    await p2.init(100);
  });

  it('the factory can be made to throw', () => {
    const cluster = new FakeCluster();
    cluster.failNextCreate(() => new Error('bad config'));
    assert.throws(() => cluster.factory('a'), /bad config/);
    assert.ok(cluster.factory('a'));
    assert.equal(cluster.created('a'), 1);
  });
});
