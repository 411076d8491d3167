// The idempotency store against its ports in memory (no broker): starting on a topic (creating
// it, advising on one without time retention, retrying failing steps), deciding keys (run,
// replay, mismatch, in flight), waiting for another instance's open transaction (it holds the
// last stable offset, so the read_committed reader cannot pass its claim), the catch-up timeout,
// a race between two instances, rebuilding the view from the log at restart, replaying from
// records read back (and a 503 when one is gone), and retention.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdempotencyKeyInFlightError, IdempotencyKeyMismatchError, IdempotencyUnavailableError, PoolClosedError } from '../../src/errors.js';
import { GatewayStartError } from '../../src/gateway/startup.js';
import { ParticipantRejection } from '../../src/gateway/group-commit/participant.js';
import { ClaimConflictError, type KeyClaim } from '../../src/gateway/idempotency/key-claim.js';
import { LogOutcomeReader } from '../../src/gateway/idempotency/log-outcome-reader.js';
import { partitionForKey } from '../../src/gateway/idempotency/partitioner.js';
import { encodeOutcome } from '../../src/gateway/idempotency/record-format.js';
import { RETENTION_MARGIN_MS } from '../../src/gateway/idempotency/retention.js';
import { IdempotencyStore, type IdempotencyStoreOptions, type KeyDecision, type Logger } from '../../src/gateway/idempotency/store.js';
import type { RecordMetadata } from '../../src/pool/producer-port.js';
import { MemoryCluster, type MemoryTransaction } from '../support/memory-idempotency-log.js';

const TOPIC = 'txgate.idempotency';
const DATA: RecordMetadata[] = [{ topic: 'orders', partition: 0, offset: '41' }];

type StoreOptions = Omit<IdempotencyStoreOptions, 'log' | 'admin'>;

function capture(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, error() {}, warn: (_obj, msg) => warnings.push(msg ?? '') };
}

/** Stores a test started: closed after it, whatever happened (their readers poll until then). */
const started: IdempotencyStore[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

/** A started store: one gateway instance on the cluster. */
async function instance(cluster: MemoryCluster, opts: StoreOptions = {}) {
  const ports = cluster.ports();
  const store = new IdempotencyStore({ ...ports, topic: TOPIC, catchUpTimeoutMs: 2_000, ...opts });
  started.push(store);
  await store.start();
  return { store, ...ports };
}

function runClaim(decision: KeyDecision): KeyClaim {
  assert.equal(decision.kind, 'run', 'the key runs');
  return (decision as { claim: KeyClaim }).claim;
}

/** The claim's part of a transaction, as group commit runs it: claim and verify, then the outcome; not yet committed. */
async function claimAndFinish(cluster: MemoryCluster, claim: KeyClaim, records = DATA): Promise<MemoryTransaction> {
  const tx = cluster.transaction();
  await claim.begin(tx);
  await claim.finish(tx, records);
  return tx;
}

function commit(tx: MemoryTransaction, claim: KeyClaim): void {
  tx.commit();
  claim.committed();
  claim.release();
}

/** Runs a keyed request to its commit. */
async function commitKey(cluster: MemoryCluster, store: IdempotencyStore, key: string, fingerprint = 'f', records = DATA): Promise<void> {
  const claim = runClaim(await store.begin(key, fingerprint));
  commit(await claimAndFinish(cluster, claim, records), claim);
}

/** Whether a promise is still pending after the readers had time to move. */
async function pending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  return (await Promise.race([promise.then(() => 'settled', () => 'settled'), sleep(150).then(() => marker)])) === marker;
}

describe('IdempotencyStore start-up', () => {
  it('creates a missing topic with compaction and time retention, replicated on up to 3 brokers', async () => {
    const cluster = new MemoryCluster();
    cluster.brokers = 5;
    const { store, admin } = await instance(cluster, { partitions: 4, retentionMs: 60_000 });
    assert.deepEqual(admin.created.map((t) => [t.topic, t.partitions, t.replicationFactor, t.config['cleanup.policy']]), [[TOPIC, 4, 3, 'compact,delete']]);
    assert.equal(admin.created[0]!.config['retention.ms'], String(60_000 + RETENTION_MARGIN_MS));
    assert.ok(!admin.calls.includes('retentionPolicy'), 'a topic it created needs no check');
    assert.equal(store.keys, 0);
    await store.close();
    assert.ok(admin.closed);
  });

  it('warns about an existing topic without time retention, naming the command that adds it', async () => {
    const cluster = new MemoryCluster();
    cluster.createTopic(TOPIC, 3, { 'cleanup.policy': 'compact' });
    const logger = capture();
    const { store, admin } = await instance(cluster, { logger, retentionMs: 60_000 });
    assert.equal(admin.created.length, 0, 'never changes an existing topic');
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0]!, /no time-based retention/);
    assert.ok(
      logger.warnings[0]!.includes(`kafka-configs.sh --bootstrap-server memory:9092 --alter --entity-type topics --entity-name ${TOPIC}`),
      logger.warnings[0],
    );
    await store.close();

    // A policy it cannot look at: says why, and what the topic should have.
    const ports = cluster.ports();
    ports.admin.retentionAnswer = { kind: 'unknown', reason: 'the principal may not look' };
    const other = new IdempotencyStore({ ...ports, topic: TOPIC, logger });
    await other.start();
    assert.match(logger.warnings[1]!, /could not check the retention .*: the principal may not look\. Make sure the topic has cleanup\.policy=compact,delete/);
    await other.close();
  });

  it('retries failing steps until they succeed, and gives up at once on an error no retry fixes', async () => {
    const cluster = new MemoryCluster();
    const ports = cluster.ports();
    ports.log.failOpens = 1;
    ports.admin.fail('endOffsets', 2);
    const store = new IdempotencyStore({ ...ports, topic: TOPIC });
    await store.start();
    assert.equal(ports.admin.calls.filter((c) => c === 'endOffsets').length, 3);
    await store.close();

    const denied = cluster.ports();
    denied.admin.fail('topicExists', 1, Object.assign(new Error('Broker: Topic authorization failed'), { code: 29 }));
    const refused = new IdempotencyStore({ ...denied, topic: 'another-topic' });
    await assert.rejects(refused.start(), (err: unknown) => err instanceof GatewayStartError && err.attempts === 1 && !err.gaveUp);
    assert.ok(denied.admin.closed, 'a failed start closes what it opened');
    assert.ok(denied.log.opened.every((r) => r.closed));
  });
});

describe('IdempotencyStore decisions', () => {
  it('the first use of a key runs; once committed, the same key and body replay its outcome', async () => {
    const cluster = new MemoryCluster();
    const { store } = await instance(cluster);
    const claim = runClaim(await store.begin('order-1', 'f'));
    assert.equal(claim.partition, partitionForKey('order-1', 3));
    commit(await claimAndFinish(cluster, claim), claim);
    assert.equal(store.keys, 1);

    const replay = await store.begin('order-1', 'f');
    assert.equal(replay.kind, 'replay');
    assert.deepEqual(replay.kind === 'replay' && replay.outcome.records, DATA);
    assert.equal(store.inFlightKeys, 0, 'a replay holds nothing');
    await store.close();
  });

  it('another body for a used key is a mismatch', async () => {
    const cluster = new MemoryCluster();
    const { store } = await instance(cluster);
    await commitKey(cluster, store, 'order-2', 'body-a');
    await assert.rejects(store.begin('order-2', 'body-b'), IdempotencyKeyMismatchError);
    await store.close();
  });

  it('a key in flight on this instance is refused until its claim is released', async () => {
    const cluster = new MemoryCluster();
    const { store } = await instance(cluster);
    const claim = runClaim(await store.begin('order-3', 'f'));
    await assert.rejects(store.begin('order-3', 'f'), IdempotencyKeyInFlightError);
    claim.release();
    runClaim(await store.begin('order-3', 'f')).release();
    await store.close();
  });

  it("waits for another instance's open transaction on the key, then replays what it committed", async () => {
    const cluster = new MemoryCluster();
    const a = await instance(cluster);
    const b = await instance(cluster);
    const claim = runClaim(await b.store.begin('order-4', 'f'));
    const tx = await claimAndFinish(cluster, claim);
    const log = cluster.partition(TOPIC, claim.partition);
    assert.ok(log.lastStableOffset < log.highWatermark, 'the open transaction holds the last stable offset back');

    const waiting = a.store.begin('order-4', 'f');
    assert.ok(await pending(waiting), 'A cannot decide while the claim is unresolved');
    commit(tx, claim);
    const decision = await waiting;
    assert.equal(decision.kind, 'replay');
    assert.deepEqual(decision.kind === 'replay' && decision.outcome.records, DATA);
    await Promise.all([a.store.close(), b.store.close()]);
  });

  it('runs the waiting request when the other transaction aborts: aborted records are invisible to read_committed', async () => {
    const cluster = new MemoryCluster();
    const a = await instance(cluster);
    const b = await instance(cluster);
    const claim = runClaim(await b.store.begin('order-5', 'f'));
    const tx = await claimAndFinish(cluster, claim);
    const waiting = a.store.begin('order-5', 'f');
    assert.ok(await pending(waiting));
    tx.abort();
    claim.aborted();
    claim.release();
    runClaim(await waiting).release();
    await Promise.all([a.store.close(), b.store.close()]);
  });

  it('gives up with IdempotencyUnavailableError when the other transaction outlasts the catch-up timeout', async () => {
    const cluster = new MemoryCluster();
    const a = await instance(cluster, { catchUpTimeoutMs: 200 });
    const b = await instance(cluster);
    const claim = runClaim(await b.store.begin('order-6', 'f'));
    const tx = await claimAndFinish(cluster, claim);
    await assert.rejects(a.store.begin('order-6', 'f'), IdempotencyUnavailableError);
    assert.equal(a.store.inFlightKeys, 0, 'the key is not left in flight');
    commit(tx, claim);
    await Promise.all([a.store.close(), b.store.close()]);
  });

  it('of two instances that both decided to run, the later claim sees the earlier one and yields to its outcome', async () => {
    const cluster = new MemoryCluster();
    const a = await instance(cluster);
    const b = await instance(cluster);
    const first = runClaim(await a.store.begin('order-7', 'f'));
    const second = runClaim(await b.store.begin('order-7', 'f'));
    const txA = cluster.transaction();
    await first.begin(txA);
    const txB = cluster.transaction();
    await assert.rejects(second.begin(txB), (err: unknown) => err instanceof ParticipantRejection && err.reason instanceof ClaimConflictError);
    txB.abort();
    second.aborted();

    const redecided = b.store.redecide(second);
    await first.finish(txA, DATA);
    commit(txA, first);
    const decision = await redecided;
    assert.equal(decision.kind, 'replay', 'the loser replays the winner');
    second.release();
    await Promise.all([a.store.close(), b.store.close()]);
  });

  it('close fails the requests waiting for the topic and closes every reader', async () => {
    const cluster = new MemoryCluster();
    const a = await instance(cluster);
    const b = await instance(cluster);
    const claim = runClaim(await b.store.begin('order-8', 'f'));
    const tx = await claimAndFinish(cluster, claim);
    const waiting = a.store.begin('order-8', 'f');
    assert.ok(await pending(waiting));
    await a.store.close();
    await assert.rejects(waiting, PoolClosedError);
    assert.ok(a.log.opened.every((r) => r.closed));
    await assert.rejects(a.store.begin('order-9', 'f'), PoolClosedError);
    commit(tx, claim);
    await b.store.close();
  });
});

describe('IdempotencyStore and the log it reads back', () => {
  it('rebuilds the view from the log: committed keys replay, aborted ones run', async () => {
    const cluster = new MemoryCluster();
    const first = await instance(cluster);
    for (let i = 0; i < 10; i++) await commitKey(cluster, first.store, `key-${i}`, `body-${i}`, [{ topic: 'orders', partition: 0, offset: String(i) }]);
    const abandoned = runClaim(await first.store.begin('key-aborted', 'f'));
    const tx = await claimAndFinish(cluster, abandoned);
    tx.abort();
    await first.store.close();

    // Holding no outcome in full, every replay reads its record back from the log by offset.
    const restarted = await instance(cluster, { recentOutcomes: { maxOutcomes: 0 } });
    assert.equal(restarted.store.keys, 10);
    const replay = await restarted.store.begin('key-7', 'body-7');
    assert.deepEqual(replay.kind === 'replay' && replay.outcome.records, [{ topic: 'orders', partition: 0, offset: '7' }]);
    assert.equal(restarted.store.outcomesRead, 1);
    await assert.rejects(restarted.store.begin('key-3', 'another body'), IdempotencyKeyMismatchError, 'decided from the record read back');
    runClaim(await restarted.store.begin('key-aborted', 'f')).release();
    await restarted.store.close();
  });

  it('answers 503, never a run, when the outcome record of a key it knows is gone from the log', async () => {
    const cluster = new MemoryCluster();
    // Holding no outcome in full, it must read the record back.
    const { store } = await instance(cluster, { recentOutcomes: { maxOutcomes: 0 } });
    await commitKey(cluster, store, 'gone', 'f');
    // Retention deletes from the log's start: the key's claim and outcome, then later records stay.
    const log = cluster.partition(TOPIC, partitionForKey('gone', 3));
    for (const r of log.records) if (r.key === 'gone') log.remove(r.offset);
    log.appendPlain('written-later', Buffer.from('{}'));
    await assert.rejects(store.begin('gone', 'f'), (err: unknown) => err instanceof IdempotencyUnavailableError && /no longer in Kafka/.test(err.message));
    await store.close();
  });
});

describe('IdempotencyStore retention', () => {
  it('a key past its retention runs as new, is not loaded at restart, and is swept from memory', async () => {
    const cluster = new MemoryCluster();
    const clock = { now: Date.parse('2026-03-01T12:00:00.000Z') };
    const now = () => clock.now;
    const a = await instance(cluster, { retentionMs: 60_000, now, sweepIntervalMs: 10 });
    await commitKey(cluster, a.store, 'order-10', 'f');
    clock.now += 30_000;
    assert.equal((await a.store.begin('order-10', 'f')).kind, 'replay', 'inside the window');
    const longMemory = await instance(cluster, { now });
    clock.now += 31_000;
    const expired = runClaim(await a.store.begin('order-10', 'another body'));
    expired.release();
    await sleep(50);
    assert.equal(a.store.keys, 0, 'swept');

    const restarted = await instance(cluster, { retentionMs: 60_000, now });
    assert.equal(restarted.store.keys, 0, 'not loaded');
    assert.equal(longMemory.store.keys, 1, 'an instance with a longer retention still answers it');
    assert.equal((await longMemory.store.begin('order-10', 'f')).kind, 'replay');
    await Promise.all([a.store.close(), restarted.store.close(), longMemory.store.close()]);
  });
});

describe('LogOutcomeReader', () => {
  it('reads a record by offset, and tells when there is none there any more', async () => {
    const cluster = new MemoryCluster();
    cluster.createTopic(TOPIC, 2);
    const log = cluster.partition(TOPIC, 1);
    const value = encodeOutcome({ fingerprint: 'f', records: DATA, committedAt: new Date().toISOString() });
    for (let i = 0; i < 5; i++) log.appendPlain(`k-${i}`, value);
    log.remove(2);
    const reader = new LogOutcomeReader({ log: cluster.ports().log, topic: TOPIC });
    assert.deepEqual(await reader.read(1, 3, { timeoutMs: 1_000 }), { offset: 3, key: 'k-3', value });
    assert.equal(await reader.read(1, 2, { timeoutMs: 1_000 }), undefined, 'removed: the next record comes instead');
    assert.equal(await reader.read(1, 9, { timeoutMs: 1_000 }), undefined, 'past the end');
    assert.equal((await Promise.all([reader.read(1, 0, { timeoutMs: 1_000 }), reader.read(1, 0, { timeoutMs: 1_000 })]))[1]?.key, 'k-0');
    await reader.close();
    await assert.rejects(reader.read(1, 0, { timeoutMs: 1_000 }), IdempotencyUnavailableError);
  });
});
