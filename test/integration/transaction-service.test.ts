// TransactionService against the real broker: group commit, poison isolation, and idempotency
// keys stored in Kafka (replay, mismatch, in flight, another instance, two instances racing).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PoolClosedError } from '../../src/errors.js';
import type { TransactionalProducerPool } from '../../src/pool/pool.js';
import type { OutgoingRecord, RecordMetadata } from '../../src/pool/producer-port.js';
import {
  IdempotencyKeyInFlightError,
  IdempotencyKeyMismatchError,
  RecordRejectedError,
} from '../../src/errors.js';
import { TransactionService, type SubmitResult } from '../../src/gateway/service/transaction-service.js';
import { consumeAll, createTopics, startKafkaPool, testBootstrap, uniqueName, type ConsumedRecord } from '../support/kafka.js';

const bootstrap = testBootstrap();
const kafka = { 'bootstrap.servers': bootstrap };

const dataTopic = uniqueName('svc-data');
const smallTopic = uniqueName('svc-small'); // max.message.bytes 1024: a 4 KiB record is refused
const idemTopic = uniqueName('svc-idem');

const pools: TransactionalProducerPool[] = [];
const services: TransactionService[] = [];

async function newPool(size: number, instanceId: string): Promise<TransactionalProducerPool> {
  const pool = await startKafkaPool(bootstrap, { size, idPrefix: 'svc', instanceId });
  pools.push(pool);
  return pool;
}

async function newService(pool: TransactionalProducerPool, extra: { maxBatchRequests?: number } = {}): Promise<TransactionService> {
  const service = new TransactionService({ pool, kafka, idempotencyTopic: idemTopic, ...extra });
  services.push(service);
  await service.start();
  return service;
}

const record = (value: string, topic = dataTopic): OutgoingRecord => ({ topic, key: Buffer.from(value), value: Buffer.from(value) });

function byPosition(records: ConsumedRecord[]): Map<string, string> {
  return new Map(records.map((r) => [`${r.topic}/${r.partition}/${r.offset}`, r.value?.toString() ?? '']));
}

const at = (m: RecordMetadata): string => `${m.topic}/${m.partition}/${m.offset}`;

function count(values: string[], v: string): number {
  return values.filter((x) => x === v).length;
}

let poolA: TransactionalProducerPool;
let serviceA: TransactionService;

before(async () => {
  await createTopics(bootstrap, [
    { topic: dataTopic, partitions: 3 },
    { topic: smallTopic, partitions: 1, config: { 'max.message.bytes': '1024' } },
  ]);
  poolA = await newPool(3, 'a');
  serviceA = await newService(poolA);
});

after(async () => {
  for (const s of services) await s.close({ timeoutMs: 10_000 });
  for (const p of pools) await p.close();
});

describe('TransactionService on a real broker', { timeout: 180_000 }, () => {
  it('packs concurrent requests into fewer transactions; every record is visible exactly once, at the offsets returned', async () => {
    const before = serviceA.stats();
    const n = 300;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => serviceA.submit({ records: [record(`gc-${i}-a`), record(`gc-${i}-b`)] })),
    );
    const stats = serviceA.stats();
    const transactions = stats.transactions - before.transactions;
    assert.equal(stats.requests - before.requests, n);
    assert.ok(transactions < n, `expected fewer than ${n} transactions, got ${transactions}`);
    assert.ok(stats.batchedRequests - before.batchedRequests > 0);

    const consumed = await consumeAll(bootstrap, dataTopic);
    const values = consumed.map((r) => r.value?.toString() ?? '');
    const positions = byPosition(consumed);
    results.forEach((res, i) => {
      assert.equal(res.replayed, false);
      assert.deepEqual(res.records.map((m) => positions.get(at(m))), [`gc-${i}-a`, `gc-${i}-b`]);
      assert.equal(count(values, `gc-${i}-a`), 1);
      assert.equal(count(values, `gc-${i}-b`), 1);
    });
  });

  it('fails only the poisoned request of a batch; its batch-mates commit without it', async () => {
    const big = 'x'.repeat(4096);
    const requests = [
      { records: [record('ok-1', smallTopic), record('ok-1-data')] },
      { records: [record('ok-2', smallTopic)] },
      { records: [record('bad-0', smallTopic), { topic: smallTopic, key: Buffer.from('bad-1'), value: Buffer.from(big) }] },
      { records: [record('ok-3-data'), record('ok-3', smallTopic)] },
      { records: [record('ok-4', smallTopic)] },
    ];
    // Submitted in one go, so they share the first transaction.
    const settled = await Promise.allSettled(requests.map((r) => serviceA.submit(r)));
    const rejected = settled[2]!;
    assert.equal(rejected.status, 'rejected');
    const err = (rejected as PromiseRejectedResult).reason as unknown;
    assert.ok(err instanceof RecordRejectedError, `expected RecordRejectedError, got ${String(err)}`);
    assert.equal(err.recordIndex, 1);
    assert.equal(err.kafkaCodeName, 'MSG_SIZE_TOO_LARGE');
    for (const i of [0, 1, 3, 4]) assert.equal(settled[i]!.status, 'fulfilled', `request ${i}: ${String((settled[i] as PromiseRejectedResult).reason)}`);

    const small = (await consumeAll(bootstrap, smallTopic)).map((r) => r.value?.toString() ?? '');
    assert.deepEqual([...small].sort(), ['ok-1', 'ok-2', 'ok-3', 'ok-4']);
    const data = (await consumeAll(bootstrap, dataTopic)).map((r) => r.value?.toString() ?? '');
    assert.equal(count(data, 'ok-1-data'), 1);
    assert.equal(count(data, 'ok-3-data'), 1);
  });

  it('replays an idempotent request (same offsets, nothing new written), refuses another body (422) and a second in-flight use (409)', async () => {
    const key = uniqueName('key');
    const first = serviceA.submit({ records: [record('idem-1')], idempotency: { key, fingerprint: 'f1' } });
    // Same key while the first is still running on this instance.
    await assert.rejects(serviceA.submit({ records: [record('idem-1')], idempotency: { key, fingerprint: 'f1' } }), IdempotencyKeyInFlightError);
    const original = await first;
    assert.equal(original.replayed, false);

    const idemBefore = await consumeAll(bootstrap, idemTopic, { isolation: 'read_uncommitted' });
    const replay = await serviceA.submit({ records: [record('idem-1')], idempotency: { key, fingerprint: 'f1' } });
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.records, original.records);
    await assert.rejects(serviceA.submit({ records: [record('idem-other')], idempotency: { key, fingerprint: 'f2' } }), IdempotencyKeyMismatchError);
    const idemAfter = await consumeAll(bootstrap, idemTopic, { isolation: 'read_uncommitted' });
    assert.equal(idemAfter.length, idemBefore.length, 'a replay must not write to the idempotency topic');

    const data = (await consumeAll(bootstrap, dataTopic)).map((r) => r.value?.toString() ?? '');
    assert.equal(count(data, 'idem-1'), 1);
    assert.equal(count(data, 'idem-other'), 0);

    // The key's record: in the same transaction as the data, in the key's partition, with the outcome.
    const keyRecords = idemAfter.filter((r) => r.key?.toString() === key).map((r) => JSON.parse(r.value!.toString()));
    assert.equal(keyRecords.length, 2);
    assert.equal(keyRecords[0].pending, true);
    assert.deepEqual(keyRecords[1].records, original.records);
    assert.equal(keyRecords[1].fingerprint, 'f1');
  });

  it('does not remember a key whose transaction aborted: the retry runs', async () => {
    const key = uniqueName('key');
    const bad = { topic: smallTopic, key: Buffer.from(key), value: Buffer.from('y'.repeat(4096)) };
    await assert.rejects(serviceA.submit({ records: [bad], idempotency: { key, fingerprint: 'f' } }), RecordRejectedError);
    const retry = await serviceA.submit({ records: [record('after-abort')], idempotency: { key, fingerprint: 'f' } });
    assert.equal(retry.replayed, false);
    const data = (await consumeAll(bootstrap, dataTopic)).map((r) => r.value?.toString() ?? '');
    assert.equal(count(data, 'after-abort'), 1);
  });

  it('a new instance (a restart, or another gateway) sees the keys committed by the first', async () => {
    const keys = Array.from({ length: 20 }, () => uniqueName('key'));
    const originals = await Promise.all(keys.map((key, i) => serviceA.submit({ records: [record(`restart-${i}`)], idempotency: { key, fingerprint: `f${i}` } })));
    const poolB = await newPool(1, 'b');
    const serviceB = await newService(poolB);
    assert.ok(serviceB.stats().idempotencyKeys >= keys.length);
    for (const [i, key] of keys.entries()) {
      const replay = await serviceB.submit({ records: [record(`restart-${i}`)], idempotency: { key, fingerprint: `f${i}` } });
      assert.equal(replay.replayed, true);
      assert.deepEqual(replay.records, originals[i]!.records);
    }
    await assert.rejects(serviceB.submit({ records: [record('x')], idempotency: { key: keys[0]!, fingerprint: 'other' } }), IdempotencyKeyMismatchError);
    assert.equal(serviceB.stats().transactions, 0);
  });

  it('two instances given the same new key at the same moment write it once; the other replays it', async () => {
    const poolC = await newPool(2, 'c');
    const serviceC = await newService(poolC);
    const rounds = 15;
    for (let i = 0; i < rounds; i++) {
      const key = uniqueName('race');
      const req = { records: [record(`race-${i}`)], idempotency: { key, fingerprint: 'same' } };
      const [a, c] = await Promise.all([serviceA.submit(req), serviceC.submit(req)]);
      const written = [a, c].filter((r: SubmitResult) => !r.replayed);
      assert.equal(written.length, 1, `round ${i}: exactly one instance writes (got replayed ${a.replayed}/${c.replayed})`);
      assert.deepEqual(a.records, c.records);
    }
    const data = (await consumeAll(bootstrap, dataTopic)).map((r) => r.value?.toString() ?? '');
    for (let i = 0; i < rounds; i++) assert.equal(count(data, `race-${i}`), 1, `race-${i}`);
  });

  it('close() lets accepted requests finish, then refuses new ones', async () => {
    const pool = await newPool(1, 'd');
    const service = await newService(pool);
    const accepted = Array.from({ length: 30 }, (_, i) => service.submit({ records: [record(`drain-${i}`)], idempotency: i % 2 ? { key: uniqueName('drain'), fingerprint: 'f' } : undefined }));
    const closed = service.close({ timeoutMs: 30_000 });
    await assert.rejects(service.submit({ records: [record('late')] }), PoolClosedError);
    const results = await Promise.allSettled(accepted);
    await closed;
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failed, []);
    const data = (await consumeAll(bootstrap, dataTopic)).map((r) => r.value?.toString() ?? '');
    for (let i = 0; i < 30; i++) assert.equal(count(data, `drain-${i}`), 1);
    assert.equal(count(data, 'late'), 0);
  });
});
