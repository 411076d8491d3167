// The fault scenarios' figures from an attempt timeline (bench/faults/attempts.ts), on constructed
// timelines: recovery time, longest gap, rates; and the coordinator-partition arithmetic that
// decides which broker coordinates which transactional id (bench/faults/cluster.ts).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { countBetween, countByAnswer, firstAckAfter, longestGap, pct, ratePerSecond, recoveredAt, type RecoveryRule } from '../../bench/faults/attempts.js';
import { javaStringHash, pooledTransactionalIds, transactionStatePartition } from '../../bench/faults/cluster.js';
import { onlyTopic } from '../../bench/faults/scenarios.js';
import type { LoadResult } from '../../src/verify/load.js';

/** Acknowledgements every `every` ms in [from, to). */
function steady(from: number, to: number, every: number): number[] {
  const out: number[] = [];
  for (let t = from; t < to; t += every) out.push(t);
  return out;
}

const RULE: RecoveryRule = { windowMs: 1_000, fraction: 0.5, holdMs: 3_000, stepMs: 100 };

it('a fault that never slows the load recovers at once', () => {
  const acks = steady(0, 20_000, 10); // 100/s
  assert.equal(recoveredAt(acks, 5_000, 20_000, 100, RULE), 5_000);
});

it('an outage recovers when the rate is back for the whole hold period', () => {
  // 100/s, nothing from 5 s to 12 s, then 100/s again
  const acks = [...steady(0, 5_000, 10), ...steady(12_000, 30_000, 10)];
  const at = recoveredAt(acks, 5_000, 30_000, 100, RULE);
  assert.equal(at, 12_000);
  assert.equal(firstAckAfter(acks, 5_000), 12_000);
  assert.deepEqual(longestGap(acks, 5_000, at!), { ms: 7_000, from: 5_000, to: 12_000 });
});

it('a short burst after the outage is not a recovery', () => {
  // 100/s, nothing from 5 s to 12 s, a burst from 12 to 13 s, nothing to 16 s, then 100/s
  const acks = [...steady(0, 5_000, 10), ...steady(12_000, 13_000, 10), ...steady(16_000, 40_000, 10)];
  assert.equal(recoveredAt(acks, 5_000, 40_000, 100, RULE), 16_000);
});

it('a trickle under half the baseline is not a recovery', () => {
  // 20/s from 12 s, 100/s from 20 s: the centred 1 s window reaches 50 at 19.875 s
  const acks = [...steady(0, 5_000, 10), ...steady(12_000, 20_000, 50), ...steady(20_000, 40_000, 10)];
  const at = recoveredAt(acks, 5_000, 40_000, 100, RULE)!;
  assert.ok(at >= 19_800 && at <= 20_000, `recovered at ${at}`);
});

it('recovery is unknown until the hold period has been seen', () => {
  const acks = [...steady(0, 5_000, 10), ...steady(12_000, 14_000, 10)];
  assert.equal(recoveredAt(acks, 5_000, 14_000, 100, RULE), undefined);
  assert.equal(recoveredAt([], 0, 60_000, 100, RULE), undefined);
});

it('the longest gap counts the tail after the last acknowledgement', () => {
  assert.deepEqual(longestGap([1_000, 2_000], 0, 10_000), { ms: 8_000, from: 2_000, to: 10_000 });
  assert.deepEqual(longestGap([], 0, 500), { ms: 500, from: 0, to: 500 });
});

it('counts, rates and percentiles', () => {
  const acks = steady(0, 10_000, 100);
  assert.equal(countBetween(acks, 1_000, 2_000), 10);
  assert.equal(ratePerSecond(acks, 0, 10_000), 10);
  assert.equal(pct([5, 1, 3, 2, 4], 0.5), 3);
  assert.equal(pct([5, 1, 3, 2, 4], 1), 5);
  assert.equal(pct([], 0.99), 0);
  assert.deepEqual(
    countByAnswer([
      { start: 0, end: 1, gateway: 'g', status: 503, code: 'TXGATE_KAFKA_UNAVAILABLE' },
      { start: 0, end: 1, gateway: 'g', status: 200 },
      { start: 0, end: 1, gateway: 'g', status: 503, code: 'TXGATE_KAFKA_UNAVAILABLE' },
      { start: 0, end: 1, gateway: 'g', status: 'timeout' },
    ]),
    { '503 TXGATE_KAFKA_UNAVAILABLE': 2, '200': 1, timeout: 1 },
  );
});

it("Java's String.hashCode and Kafka's coordinator partition", () => {
  // values from Java: "txgate-a-0".hashCode() etc. (computed by the same recurrence, checked by hand for short strings)
  assert.equal(javaStringHash(''), 0);
  assert.equal(javaStringHash('a'), 97);
  assert.equal(javaStringHash('ab'), 97 * 31 + 98);
  assert.equal(javaStringHash('hello world'), 1794106052);
  assert.equal(javaStringHash('polygenelubricants'), -2147483648); // Integer.MIN_VALUE: Utils.abs gives 0
  assert.equal(transactionStatePartition('polygenelubricants', 3), 0);
  assert.equal(transactionStatePartition('ab', 3), (97 * 31 + 98) % 3);
  for (let s = 0; s < 50; s++) {
    const p = transactionStatePartition(`txgate-x-${s}`, 50);
    assert.ok(Number.isInteger(p) && p >= 0 && p < 50);
  }
});

it("a pool's transactional ids have consecutive hashes: they spread over every coordinator partition", () => {
  // why the scenarios' cluster has one __transaction_state partition (bench/faults/cluster.ts)
  for (const instance of ['a', 'gw-1', 'f1x2-s2-gw', 'payments-eu-west-7']) {
    const ids = pooledTransactionalIds(instance, 8);
    assert.equal(ids[0], `txgate-${instance}-0`);
    const hashes = ids.map(javaStringHash);
    for (let i = 1; i < hashes.length; i++) assert.equal(hashes[i]! - hashes[i - 1]!, 1, `${ids[i]} follows ${ids[i - 1]}`);
    assert.equal(new Set(ids.map((id) => transactionStatePartition(id, 3))).size, 3, `${instance}: all 3 partitions`);
    assert.deepEqual(new Set(ids.map((id) => transactionStatePartition(id, 1))), new Set([0]));
  }
});

it('onlyTopic keeps each request\'s records on one topic and the matching positions of its 200', () => {
  const load = {
    runId: 'r',
    keyPrefix: 'k-',
    topics: ['a', 'b'],
    gateways: ['g'],
    mode: 'round-robin',
    startedAt: '',
    stats: {} as LoadResult['stats'],
    requests: [
      {
        id: 0,
        idempotencyKey: 'k-r-0',
        records: [
          { topic: 'a', key: 'k-r-0-0', value: '{}' },
          { topic: 'b', key: 'k-r-0-1', value: '{}' },
        ],
        outcomes: [{ kind: 'acknowledged', positions: [{ topic: 'a', partition: 1, offset: '5' }, { topic: 'b', partition: 0, offset: '7' }], replayed: false }],
      },
      {
        id: 1,
        idempotencyKey: 'k-r-1',
        records: [
          { topic: 'b', key: 'k-r-1-0', value: '{}' },
          { topic: 'a', key: 'k-r-1-1', value: '{}' },
        ],
        outcomes: [{ kind: 'failed', status: 404, code: 'TXGATE_UNKNOWN_TOPIC' }],
      },
    ],
  } satisfies LoadResult;
  const only = onlyTopic(load, 'a');
  assert.deepEqual(only.topics, ['a']);
  assert.deepEqual(only.requests.map((r) => r.records.map((x) => x.key)), [['k-r-0-0'], ['k-r-1-1']]);
  assert.deepEqual(only.requests[0]!.outcomes, [{ kind: 'acknowledged', positions: [{ topic: 'a', partition: 1, offset: '5' }], replayed: false }]);
  assert.deepEqual(only.requests[1]!.outcomes, [{ kind: 'failed', status: 404, code: 'TXGATE_UNKNOWN_TOPIC' }]);
});
