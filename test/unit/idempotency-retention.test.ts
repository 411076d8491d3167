// Retention of idempotency keys without a broker: the view forgets outcomes past the window (when
// loading and by sweeping) but never the records whose transaction may still be open; the topic
// settings derived from the retention.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeClaim, encodeOutcome } from '../../src/gateway/idempotency/record-format.js';
import { RETENTION_MARGIN_MS, topicRetentionConfig } from '../../src/gateway/idempotency/retention.js';
import { IdempotencyStore } from '../../src/gateway/idempotency/store.js';
import { IdempotencyView } from '../../src/gateway/idempotency/view.js';
import { MemoryCluster } from '../support/memory-idempotency-log.js';

const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const RETENTION = 60_000;

/** A view with a 60 s retention on a clock the test moves. */
function viewAt(start = T0, partitions = 1) {
  const clock = { now: start };
  const view = new IdempotencyView(partitions, {}, { retentionMs: RETENTION, now: () => clock.now });
  return { view, clock };
}

/** An outcome committed `ageMs` before T0. */
const committed = (fingerprint: string, ageMs: number) => ({
  fingerprint,
  records: [{ topic: 't', partition: 0, offset: '1' }],
  committedAt: new Date(T0 - ageMs).toISOString(),
});

describe('IdempotencyView retention', () => {
  it('does not load outcomes already past the retention', () => {
    const { view } = viewAt();
    view.applyCommitted(0, 0, 'old', encodeOutcome(committed('f-old', RETENTION)));
    view.applyCommitted(0, 1, 'recent', encodeOutcome(committed('f-recent', RETENTION - 1)));
    assert.equal(view.lookup('old'), undefined);
    assert.equal(view.lookup('recent')?.outcome?.fingerprint, 'f-recent');
    assert.equal(view.size, 1);
    assert.equal(view.skippedExpired, 1);
    assert.equal(view.position('committed', 0), 2);
  });

  it('a newer record for a key that is past the retention makes the key unknown', () => {
    const { view } = viewAt();
    view.applyCommitted(0, 0, 'k', encodeOutcome(committed('f1', 10)));
    // (only with skewed clocks: a later outcome stamped earlier, already expired)
    view.applyCommitted(0, 1, 'k', encodeOutcome(committed('f2', RETENTION + 5)));
    assert.equal(view.lookup('k'), undefined);
    assert.equal(view.size, 0);
  });

  it('stops answering an outcome the moment it expires, and the sweep frees it', () => {
    const { view, clock } = viewAt();
    view.remember('k', committed('f', 0), 5);
    clock.now = T0 + RETENTION - 1;
    assert.equal(view.lookup('k')?.outcome?.fingerprint, 'f');
    assert.equal(view.sweep(), 0);
    clock.now = T0 + RETENTION;
    assert.equal(view.lookup('k'), undefined, 'expired: a request with the key runs as new');
    assert.equal(view.size, 1, 'held until the sweep');
    assert.equal(view.sweep(), 1);
    assert.equal(view.size, 0);
  });

  it('sweeps exactly the expired outcomes, whatever the order they arrived in', () => {
    const { view, clock } = viewAt();
    const ages = [5_000, 50_000, 1_000, 30_000, 59_000, 20_000];
    ages.forEach((age, i) => view.remember(`k${i}`, committed(`f${i}`, age), i));
    clock.now = T0 + 30_000; // past the 60 s: ages 30_000, 50_000 and 59_000
    assert.equal(view.sweep(2), 2, 'in slices');
    assert.equal(view.lookup('k1'), undefined);
    assert.equal(view.lookup('k4'), undefined);
    assert.equal(view.size, 4);
    assert.equal(view.sweep(2), 1);
    assert.deepEqual(
      ages.map((_, i) => view.lookup(`k${i}`) !== undefined),
      [true, false, true, false, false, true],
    );
    assert.equal(view.size, 3);
  });

  it('a key run again after it expired keeps its new outcome when the old one is swept', () => {
    const { view, clock } = viewAt();
    view.remember('k', committed('first', RETENTION - 1_000), 1);
    clock.now = T0 + 1_000;
    assert.equal(view.lookup('k'), undefined);
    view.remember('k', { ...committed('second', 0), committedAt: new Date(clock.now).toISOString() }, 9);
    assert.equal(view.sweep(), 0, "the first outcome's expiry no longer applies");
    assert.equal(view.lookup('k')?.outcome?.fingerprint, 'second');
    assert.equal(view.lookup('k')?.offset, 9);
  });

  it('remembering the same record twice (our commit, then the consumer reading it) holds it once', () => {
    const { view, clock } = viewAt();
    view.remember('k', committed('f', 0), 3);
    view.applyCommitted(0, 3, 'k', encodeOutcome(committed('f', 0)));
    assert.equal(view.size, 1);
    assert.equal(view.cachedOutcomes, 1);
    clock.now = T0 + RETENTION;
    assert.equal(view.sweep(), 1);
    assert.equal(view.size, 0);
  });

  it('an outcome committed within a second keeps its key that second at least (committedAt is held in whole seconds, rounded up)', () => {
    const { view, clock } = viewAt();
    view.remember('k', { ...committed('f', 0), committedAt: new Date(T0 + 1).toISOString() }, 1);
    clock.now = T0 + 1 + RETENTION - 1;
    assert.equal(view.lookup('k')?.offset, 1);
    clock.now = T0 + 1000 + RETENTION - 1;
    assert.equal(view.lookup('k')?.offset, 1, 'rounded up: answered up to a second longer, never shorter');
    clock.now = T0 + 1000 + RETENTION;
    assert.equal(view.lookup('k'), undefined);
  });

  it('loading (records summarized, not held in full) expires and sweeps the same way', () => {
    const clock = { now: T0 };
    // Loading ends at offset 1000 and nothing is held in full: every record below is only summarized.
    const view = new IdempotencyView(1, { uncommitted: [1000] }, { retentionMs: RETENTION, now: () => clock.now, recentOutcomes: { maxOutcomes: 0 } });
    view.applyCommitted(0, 0, 'old', encodeOutcome(committed('f-old', RETENTION)));
    view.applyCommitted(0, 1, 'k', encodeClaim({ pending: true, fingerprint: 'f', claimedAt: new Date(T0 - 5_000).toISOString() }));
    assert.equal(view.committedClaim('k'), 1, 'a committed claim holds the key until its outcome is read');
    view.applyCommitted(0, 2, 'k', encodeOutcome(committed('f', 5_000)));
    assert.equal(view.committedClaim('k'), undefined);
    assert.deepEqual(view.lookup('k'), { offset: 2, outcome: undefined }, 'known by its offset only');
    assert.equal(view.lookup('old'), undefined);
    assert.equal(view.skippedExpired, 1);
    clock.now = T0 + RETENTION - 5_000;
    assert.equal(view.lookup('k'), undefined);
    assert.equal(view.sweep(), 1);
    assert.equal(view.size, 0);
  });

  it('never drops a record whose transaction may still be open, however old', () => {
    const { view, clock } = viewAt();
    view.applyCommitted(0, 0, 'k', encodeOutcome(committed('first', 0)));
    // The key expired, and another instance is running it again: its claim is read uncommitted.
    clock.now = T0 + 10 * RETENTION;
    view.applyUncommitted(0, 1, 'k');
    view.applyUncommitted(0, 2, 'other');
    assert.equal(view.sweep(), 1);
    assert.equal(view.lookup('k'), undefined);
    assert.deepEqual(view.unresolved(0, 'k'), [1], 'a new writer of the key must still wait for that claim');
    assert.deepEqual(view.unresolved(0, 'other'), [2]);
    // and a claim racing ours is still seen
    assert.equal(view.conflicts(0, 'k', 1, 3, new Set([3])), true);
    view.advance('committed', 0, 3);
    assert.deepEqual(view.unresolved(0, 'k'), []);
  });

  it('an outcome without a readable committedAt is never expired here', () => {
    const { view, clock } = viewAt();
    view.applyCommitted(0, 0, 'foreign', Buffer.from(JSON.stringify({ fingerprint: 'f', records: [] })));
    clock.now = T0 + 100 * RETENTION;
    assert.equal(view.sweep(), 0);
    assert.equal(view.lookup('foreign')?.outcome?.fingerprint, 'f');
  });

  it('without a retention, nothing expires', () => {
    const view = new IdempotencyView(1);
    view.remember('k', committed('f', 10 * 365 * 24 * 3600_000), 0);
    assert.equal(view.sweep(), 0);
    assert.equal(view.lookup('k')?.outcome?.fingerprint, 'f');
  });
});

describe('retention settings', () => {
  it('the topic keeps records a margin longer than the gateway answers them, and rolls segments within the window', () => {
    const day = topicRetentionConfig(24 * 3600_000);
    assert.equal(day['cleanup.policy'], 'compact,delete');
    assert.equal(Number(day['retention.ms']), 24 * 3600_000 + RETENTION_MARGIN_MS);
    assert.ok(RETENTION_MARGIN_MS >= 3600_000);
    assert.ok(Number(day['segment.ms']) < Number(day['retention.ms']) / 10);
    assert.equal(topicRetentionConfig(2_000)['segment.ms'], String(10 * 60_000), 'no tiny segments');
    assert.equal(topicRetentionConfig(365 * 24 * 3600_000)['segment.ms'], String(7 * 24 * 3600_000), "no longer than Kafka's default");
  });

  it('the store refuses a retention that is not a positive number of milliseconds', () => {
    for (const retentionMs of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new IdempotencyStore({ ...new MemoryCluster().ports(), retentionMs }), RangeError, String(retentionMs));
    }
  });
});
