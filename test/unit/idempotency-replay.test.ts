// Replaying a committed key: from the outcomes held in full, or read back from the topic by
// offset (a fake reader here; log-outcome-reader.ts on the Kafka adapter in the integration
// tests), and what a record that is gone, belongs to another key or has another body means.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideKey } from '../../src/gateway/idempotency/decision.js';
import { encodeClaim, encodeOutcome, type CommittedOutcome } from '../../src/gateway/idempotency/record-format.js';
import { RecentOutcomes } from '../../src/gateway/idempotency/recent-outcomes.js';
import { replayFromTopic } from '../../src/gateway/idempotency/replay.js';
import { IdempotencyView } from '../../src/gateway/idempotency/view.js';
import { IdempotencyKeyMismatchError, IdempotencyUnavailableError } from '../../src/errors.js';
import { FakeOutcomeReader } from '../support/fake-outcome-reader.js';

const AT = '2026-05-01T00:00:00.000Z';
const outcome = (fingerprint: string, dataOffset = '41'): CommittedOutcome => ({
  fingerprint,
  records: [{ topic: 'orders', partition: 2, offset: dataOffset }],
  committedAt: AT,
});

/** A view that has loaded `records` (offset -> [key, value]) at start: none of them held in full. */
function loaded(records: Array<[number, string, Buffer]>, loadEnd = 100): IdempotencyView {
  const view = new IdempotencyView(1, { uncommitted: [loadEnd] }, { recentOutcomes: { maxOutcomes: 10 } });
  for (const [offset, key, value] of records) view.applyCommitted(0, offset, key, value);
  return view;
}

/** decideKey, then the read back when the outcome is not held: what the store does. */
async function replay(view: IdempotencyView, reader: FakeOutcomeReader, key: string, fingerprint: string) {
  const step = decideKey(view, key, fingerprint, 0);
  assert.equal(step.kind, 'replay');
  if (step.kind !== 'replay') throw new Error('unreachable');
  return step.outcome ?? replayFromTopic(view, reader, { key, fingerprint, partition: 0, offset: step.offset }, { timeoutMs: 1_000 });
}

describe('replaying a committed key', () => {
  it('replays an outcome held in full without reading Kafka', async () => {
    const view = new IdempotencyView(1);
    const reader = new FakeOutcomeReader();
    view.applyCommitted(0, 0, 'k', encodeClaim({ pending: true, fingerprint: 'f', claimedAt: AT }));
    view.applyCommitted(0, 1, 'k', encodeOutcome(outcome('f')));
    assert.deepEqual(await replay(view, reader, 'k', 'f'), outcome('f'));
    assert.equal(reader.reads.length, 0);
    // and a different body is a 422 at once
    assert.throws(() => decideKey(view, 'k', 'other', 0), IdempotencyKeyMismatchError);
  });

  it('reads an outcome not held in full back by its offset, checks it, and holds it for the next retry', async () => {
    const view = loaded([
      [10, 'k', encodeClaim({ pending: true, fingerprint: 'f', claimedAt: AT })],
      [11, 'k', encodeOutcome(outcome('f'))],
    ]);
    const reader = new FakeOutcomeReader();
    reader.put(0, 11, 'k', encodeOutcome(outcome('f')));
    assert.deepEqual(view.lookup('k'), { offset: 11, outcome: undefined });
    assert.deepEqual(await replay(view, reader, 'k', 'f'), outcome('f'));
    assert.deepEqual(reader.reads, [{ partition: 0, offset: 11 }]);
    assert.deepEqual(await replay(view, reader, 'k', 'f'), outcome('f'));
    assert.equal(reader.reads.length, 1, 'the second retry replays from memory');
  });

  it('a different body is a 422, decided from the record read back', async () => {
    const view = loaded([[11, 'k', encodeOutcome(outcome('f'))]]);
    const reader = new FakeOutcomeReader();
    reader.put(0, 11, 'k', encodeOutcome(outcome('f')));
    await assert.rejects(replay(view, reader, 'k', 'other body'), IdempotencyKeyMismatchError);
  });

  it('a record that is gone is a 503, never a run', async () => {
    const view = loaded([[11, 'k', encodeOutcome(outcome('f'))]]);
    const reader = new FakeOutcomeReader();
    await assert.rejects(replay(view, reader, 'k', 'f'), IdempotencyUnavailableError, 'nothing at or after the offset');
    reader.put(0, 12, 'later', encodeOutcome(outcome('g')));
    await assert.rejects(replay(view, reader, 'k', 'f'), IdempotencyUnavailableError, 'the next record instead: compacted away');
    assert.equal(decideKey(view, 'k', 'f', 0).kind, 'replay', 'the key stays taken');
  });

  it('a record of another key at the offset (an index collision, or another topic) is a 503', async () => {
    const view = loaded([[11, 'k', encodeOutcome(outcome('f'))]]);
    const reader = new FakeOutcomeReader();
    reader.put(0, 11, 'not-k', encodeOutcome(outcome('f')));
    await assert.rejects(replay(view, reader, 'k', 'f'), (err: unknown) => err instanceof IdempotencyUnavailableError && /another key/.test(err.message));
  });

  it('a record at the offset that is not a readable outcome is a 503', async () => {
    const view = loaded([[11, 'k', encodeOutcome(outcome('f'))]]);
    for (const value of [encodeClaim({ pending: true, fingerprint: 'f', claimedAt: AT }), Buffer.from('{"fingerprint":"f","records":[x],"committedAt":"2026-05-01T00:00:00.000Z"}'), null]) {
      const reader = new FakeOutcomeReader();
      reader.put(0, 11, 'k', value);
      await assert.rejects(replay(view, reader, 'k', 'f'), IdempotencyUnavailableError, String(value));
    }
  });

  it('a record that is gone because the view moved on to a newer outcome: decide again', async () => {
    const view = loaded([[11, 'k', encodeOutcome(outcome('f'))]]);
    const reader = new FakeOutcomeReader();
    const step = decideKey(view, 'k', 'f', 0);
    assert.equal(step.kind, 'replay');
    view.applyCommitted(0, 120, 'k', encodeOutcome(outcome('f', '99'))); // meanwhile, after loading: held in full
    const again = await replayFromTopic(view, reader, { key: 'k', fingerprint: 'f', partition: 0, offset: 11 }, { timeoutMs: 1_000 });
    assert.equal(again, 'decide-again');
    assert.deepEqual(await replay(view, reader, 'k', 'f'), outcome('f', '99'));
  });

  it('Kafka unreachable: the reader’s 503 reaches the client', async () => {
    const view = loaded([[11, 'k', encodeOutcome(outcome('f'))]]);
    const reader = new FakeOutcomeReader();
    reader.failure = new IdempotencyUnavailableError('no broker');
    await assert.rejects(replay(view, reader, 'k', 'f'), IdempotencyUnavailableError);
  });

  it('the tail of the load is decoded in full: retries just after a restart replay from memory', async () => {
    // Loading ends at 100; 10 outcomes held in full means the last 20 records are decoded.
    const records: Array<[number, string, Buffer]> = [];
    for (let i = 0; i < 50; i++) {
      records.push([2 * i, `k${i}`, encodeClaim({ pending: true, fingerprint: 'f', claimedAt: AT })]);
      records.push([2 * i + 1, `k${i}`, encodeOutcome(outcome('f'))]);
    }
    const view = loaded(records);
    assert.equal(view.size, 50);
    assert.equal(view.cachedOutcomes, 10);
    assert.equal(view.lookup('k49')?.outcome?.fingerprint, 'f');
    assert.equal(view.lookup('k40')?.outcome?.fingerprint, 'f');
    assert.equal(view.lookup('k39')?.outcome, undefined);
    assert.equal(view.lookup('k0')?.offset, 1);
  });
});

describe('RecentOutcomes', () => {
  it('keeps the newest outcomes, within both bounds, oldest out first', () => {
    const recent = new RecentOutcomes({ maxOutcomes: 3, maxRecords: 5 });
    const withRecords = (n: number): CommittedOutcome => ({ fingerprint: 'f', records: Array.from({ length: n }, (_, i) => ({ topic: 't', partition: 0, offset: String(i) })), committedAt: AT });
    recent.set('a', withRecords(1), 1);
    recent.set('b', withRecords(1), 2);
    recent.set('c', withRecords(1), 3);
    recent.set('d', withRecords(1), 4);
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => recent.get(k)?.offset), [undefined, 2, 3, 4]);
    recent.set('e', withRecords(4), 5); // 1 + 1 + 1 + 4 > 5 records: b and c go
    assert.deepEqual(['b', 'c', 'd', 'e'].map((k) => recent.get(k)?.offset), [undefined, undefined, 4, 5]);
    recent.set('e', withRecords(1), 3); // older than the one held: ignored
    assert.equal(recent.get('e')?.offset, 5);
    recent.set('big', withRecords(6), 9); // more than the bound alone: not held
    assert.equal(recent.get('big'), undefined);
    assert.equal(recent.size, 2);
    recent.delete('d');
    assert.equal(recent.size, 1);
    assert.equal(new RecentOutcomes({ maxOutcomes: 0 }).size, 0);
  });
});
