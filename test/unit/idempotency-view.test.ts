// The idempotency store's pure parts: partitioning, the record format, the in-memory view of the
// two consumers, and the claim protocol (over a fake transaction).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AcquireAbortedError } from '../../src/errors.js';
import { ParticipantRejection } from '../../src/gateway/group-commit/participant.js';
import { ClaimConflictError, KeyClaim } from '../../src/gateway/idempotency/key-claim.js';
import { murmur2, partitionForKey } from '../../src/gateway/idempotency/partitioner.js';
import { decodeOutcome, decodeRecord, encodeClaim, encodeOutcome, summarizeRecord } from '../../src/gateway/idempotency/record-format.js';
import { IdempotencyView } from '../../src/gateway/idempotency/view.js';
import { IdempotencyUnavailableError } from '../../src/errors.js';
import type { OutgoingRecord, RecordMetadata } from '../../src/pool/producer-port.js';
import type { Transaction } from '../../src/pool/types.js';
import { flush, track } from '../support/fake-producer.js';

const outcome = (fingerprint: string, offset = '7') => ({
  fingerprint,
  records: [{ topic: 't', partition: 0, offset }],
  committedAt: '2026-01-01T00:00:00.000Z',
});

describe('murmur2 partitioning', () => {
  it("matches the Java client's murmur2 (librdkafka's test vectors)", () => {
    const short = '1234';
    const unaligned = 'PreAmbleWillBeRemoved,ThePrePartThatIs';
    const vectors: Array<[string, number]> = [
      ['kafka', 0xd067cf64],
      ['giberish123456789', 0x8f552b0c],
      [short, 0x9fc97b14],
      [short.slice(1), 0xe7c009ca],
      [short.slice(2), 0x873930da],
      [short.slice(3), 0x5a4b5ca1],
      [unaligned, 0x78424f1c],
      [unaligned.slice(1), 0x4a62b377],
      [unaligned.slice(2), 0xe0e4e09e],
      [unaligned.slice(3), 0x62b8b43f],
      ['', 0x106e08d9],
    ];
    for (const [input, expected] of vectors) assert.equal(murmur2(Buffer.from(input)), expected | 0, input);
  });

  it('maps a key to a partition the way the Java default partitioner does', () => {
    assert.equal(partitionForKey('kafka', 3), (0xd067cf64 & 0x7fffffff) % 3);
    for (const key of ['a', 'b', 'order-17', 'ünïcode']) {
      const p = partitionForKey(key, 5);
      assert.ok(p >= 0 && p < 5);
      assert.equal(partitionForKey(key, 5), p);
    }
  });
});

describe('idempotency record format', () => {
  it('round-trips an outcome and ignores claims and foreign values', () => {
    assert.deepEqual(decodeOutcome(encodeOutcome(outcome('f'))), outcome('f'));
    assert.equal(decodeOutcome(Buffer.from(JSON.stringify({ pending: true, fingerprint: 'f', claimedAt: 'x' }))), undefined);
    assert.equal(decodeOutcome(Buffer.from('not json')), undefined);
    assert.equal(decodeOutcome(Buffer.from('{"fingerprint":1}')), undefined);
    assert.equal(decodeOutcome(null), undefined);
  });

  /** What loading needs, the slow way. */
  const slowSummary = (value: Buffer) => {
    const r = decodeRecord(value);
    if (!r) return undefined;
    return r.kind === 'claim' ? { kind: 'claim', at: Date.parse(r.claim.claimedAt) } : { kind: 'outcome', at: Date.parse(r.outcome.committedAt) };
  };
  const isoTime = fc.date({ min: new Date(Date.UTC(100, 0, 1)), max: new Date(Date.UTC(9999, 11, 31)), noInvalidDate: true }).map((d) => d.toISOString());
  const fingerprint = fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string());
  const recordMetadata = fc.record({ topic: fc.stringMatching(/^[a-zA-Z0-9._-]{1,20}$/), partition: fc.nat(100), offset: fc.bigInt({ min: 0n, max: 2n ** 62n }).map(String) });

  it('summarizes what txgate writes without parsing, exactly as decoding would', () => {
    fc.assert(
      fc.property(fingerprint, fc.array(recordMetadata, { maxLength: 5 }), isoTime, (fp, records, at) => {
        const outcome = encodeOutcome({ fingerprint: fp, records, committedAt: at });
        assert.deepEqual(summarizeRecord(outcome), slowSummary(outcome));
        assert.deepEqual(summarizeRecord(outcome), { kind: 'outcome', at: Date.parse(at) });
        const claim = encodeClaim({ pending: true, fingerprint: fp, claimedAt: at });
        assert.deepEqual(summarizeRecord(claim), { kind: 'claim', at: Date.parse(at) });
      }),
    );
  });

  it('summarizes anything else as decoding would: foreign values, other layouts, odd times', () => {
    const cases = [
      '{"fingerprint":"f","records":[],"committedAt":"2026-02-30T00:00:00.000Z"}',
      '{"fingerprint":"f","records":[],"committedAt":"2028-02-29T23:59:59.999Z"}',
      '{"fingerprint":"f","records":[],"committedAt":"2100-02-29T00:00:00.000Z"}',
      '{"fingerprint":"f","records":[],"committedAt":"2026-04-31T00:00:00.000Z"}',
      '{"fingerprint":"f","records":[],"committedAt":"2026-12-31T24:00:00.000Z"}',
      '{"fingerprint":"f","records":[],"committedAt":"0099-01-01T00:00:00.000Z"}',
      '{"fingerprint":"f","records":[],"committedAt":"2026-13-01T00:00:00.000Z"}',
      '{"fingerprint":"f","records":[],"committedAt":"not a time at all, 24ch"}',
      '{"fingerprint":"f","records":[],"pending":true,"x":[],"committedAt":"2026-01-01T00:00:00.000Z"}',
      '{"fingerprint":"f\\"","records":[],"committedAt":"2026-01-01T00:00:00.000Z"}',
      '{"fingerprint":"f","records":{},"committedAt":"2026-01-01T00:00:00.000Z"}',
      '{"committedAt":"2026-01-01T00:00:00.000Z","fingerprint":"f","records":[]}',
      '{"fingerprint":"f","records":[]}',
      '{"pending":true,"fingerprint":"f","claimedAt":"2026-01-01T00:00:00.000Z","x":1}',
      '{"pending":true,"fingerprint":"f","claimedAt":"later"}',
      '{"pending":false,"fingerprint":"f","records":[],"claimedAt":"2026-01-01T00:00:00.000Z"}',
      '{"fingerprint":1}',
      'not json"}',
      '',
    ];
    for (const text of cases) assert.deepEqual(summarizeRecord(Buffer.from(text)), slowSummary(Buffer.from(text)), text);
    fc.assert(fc.property(fc.json(), (text) => assert.deepEqual(summarizeRecord(Buffer.from(text)), slowSummary(Buffer.from(text)))));
  });
});

describe('IdempotencyView', () => {
  it('remembers committed outcomes, keeps the newest, and forgets on a tombstone', () => {
    const view = new IdempotencyView(1);
    view.applyCommitted(0, 0, 'k', Buffer.from(JSON.stringify({ pending: true, fingerprint: 'f', claimedAt: 'x' })));
    assert.equal(view.lookup('k'), undefined);
    view.applyCommitted(0, 1, 'k', encodeOutcome(outcome('f1')));
    assert.equal(view.lookup('k')?.outcome?.fingerprint, 'f1');
    view.remember('k', outcome('older'), 0);
    assert.equal(view.lookup('k')?.outcome?.fingerprint, 'f1');
    view.applyCommitted(0, 2, 'k', null);
    assert.equal(view.lookup('k'), undefined);
    assert.equal(view.position('committed', 0), 3);
  });

  it('waits for a cursor to reach a target, and gives up at the deadline or when the caller leaves', async () => {
    const view = new IdempotencyView(2);
    const reached = track(view.waitFor('committed', 1, 5, { timeoutMs: 10_000 }));
    view.advance('committed', 1, 4);
    view.advance('committed', 0, 9); // another partition
    await flush();
    assert.equal(reached.settled(), false);
    view.advance('committed', 1, 5);
    await reached.promise;
    await assert.rejects(view.waitFor('uncommitted', 0, 1, { timeoutMs: 5 }), IdempotencyUnavailableError);
    const leaving = new AbortController();
    const left = view.waitFor('uncommitted', 0, 1, { timeoutMs: 10_000, signal: leaving.signal });
    leaving.abort();
    await assert.rejects(left, AcquireAbortedError);
    const closing = view.waitFor('uncommitted', 0, 1, { timeoutMs: 10_000 });
    view.failWaiters(new Error('closed'));
    await assert.rejects(closing, /closed/);
  });

  it('tracks records read uncommitted until the committed cursor passes them', () => {
    const view = new IdempotencyView(1);
    view.applyUncommitted(0, 0, 'k');
    view.applyUncommitted(0, 1, 'j');
    view.applyUncommitted(0, 2, 'k');
    assert.deepEqual(view.unresolved(0, 'k'), [0, 2]);
    view.advance('committed', 0, 2); // passed offsets 0 and 1: their transactions ended
    assert.deepEqual(view.unresolved(0, 'k'), [2]);
    assert.deepEqual(view.unresolved(0, 'j'), []);
    // Already passed by the committed cursor when read: nothing to resolve.
    view.applyUncommitted(0, 1, 'late');
    assert.deepEqual(view.unresolved(0, 'late'), []);
    // Our own aborted records never resolve into anything: drop them at once, even before they are read.
    view.markAborted(0, [2, 3]);
    assert.deepEqual(view.unresolved(0, 'k'), []);
    view.applyUncommitted(0, 3, 'k');
    assert.deepEqual(view.unresolved(0, 'k'), []);
  });

  it('sees a conflict for records of the key between the horizon and our claim, or a newer commit', () => {
    const view = new IdempotencyView(1);
    const own = new Set<number>([12]);
    view.applyUncommitted(0, 8, 'k'); // before the horizon: the decision already covered it
    assert.equal(view.conflicts(0, 'k', 10, 12, own), false);
    view.applyUncommitted(0, 11, 'other');
    assert.equal(view.conflicts(0, 'k', 10, 12, own), false);
    view.applyUncommitted(0, 12, 'k'); // our own claim
    assert.equal(view.conflicts(0, 'k', 10, 12, own), false);
    view.applyUncommitted(0, 13, 'k'); // after our claim: the other writer will see us
    assert.equal(view.conflicts(0, 'k', 10, 12, own), false);
    view.applyUncommitted(0, 10, 'k'); // (out of order only in this test) a claim in the window
    assert.equal(view.conflicts(0, 'k', 10, 12, own), true);
    const passed = new IdempotencyView(1);
    passed.remember('k', outcome('f'), 15); // committed by someone else, its claim already passed
    assert.equal(passed.conflicts(0, 'k', 10, 12, new Set([12])), true);
    assert.equal(passed.conflicts(0, 'k', 16, 20, new Set([20])), false);
  });
});

/** A transaction handle that assigns offsets per partition and records what was sent. */
function fakeTx(startOffset = 100): Transaction & { sent: OutgoingRecord[] } {
  let next = startOffset;
  const sent: OutgoingRecord[] = [];
  return {
    transactionalId: 'tx-test-0',
    slot: 0,
    sent,
    send(records: OutgoingRecord | OutgoingRecord[]): Promise<RecordMetadata[]> {
      const list = Array.isArray(records) ? records : [records];
      sent.push(...list);
      return Promise.resolve(list.map((r) => ({ topic: r.topic, partition: r.partition ?? 0, offset: String(next++) })));
    },
    sendOffsets: () => Promise.resolve(),
  };
}

function claimFor(view: IdempotencyView, key: string, horizon: number, released: string[] = []): KeyClaim {
  return new KeyClaim(
    key,
    'fp',
    horizon,
    { topic: 'txgate.idempotency', partition: 0, view, verifyTimeoutMs: 1000, now: () => new Date('2026-01-02T03:04:05Z') },
    (c) => released.push(c.key),
  );
}

describe('KeyClaim', () => {
  it('writes a pending claim first, verifies it, then the outcome; remembers it once committed', async () => {
    const view = new IdempotencyView(1, { uncommitted: [100] });
    const released: string[] = [];
    const claim = claimFor(view, 'k', 100, released);
    const tx = fakeTx();
    const begun = track(claim.begin(tx));
    await flush();
    assert.equal(tx.sent.length, 1);
    assert.deepEqual(JSON.parse(tx.sent[0]!.value!.toString()), { pending: true, fingerprint: 'fp', claimedAt: '2026-01-02T03:04:05.000Z' });
    assert.equal(tx.sent[0]!.key!.toString(), 'k');
    assert.equal(tx.sent[0]!.partition, 0);
    assert.equal(tx.sent[0]!.topic, 'txgate.idempotency');
    // Not verified until the read_uncommitted consumer has read up to the claim.
    assert.equal(begun.settled(), false);
    view.applyUncommitted(0, 100, 'k');
    await begun.promise;
    const data = [{ topic: 'orders', partition: 2, offset: '41' }];
    await claim.finish(tx, data);
    assert.deepEqual(decodeOutcome(tx.sent[1]!.value), { fingerprint: 'fp', records: data, committedAt: '2026-01-02T03:04:05.000Z' });
    assert.equal(view.lookup('k'), undefined);
    claim.committed();
    assert.deepEqual(view.lookup('k'), { offset: 101, outcome: { fingerprint: 'fp', records: data, committedAt: '2026-01-02T03:04:05.000Z' } });
    claim.release();
    claim.release();
    assert.deepEqual(released, ['k']);
  });

  it('gives way when another writer claimed the key after the decision', async () => {
    const view = new IdempotencyView(1, { uncommitted: [100] });
    const claim = claimFor(view, 'k', 98);
    view.applyUncommitted(0, 99, 'k'); // another instance's claim, between our horizon and our claim
    const tx = fakeTx();
    const begun = claim.begin(tx);
    view.applyUncommitted(0, 100, 'k');
    await assert.rejects(begun, (err: unknown) => err instanceof ParticipantRejection && err.reason instanceof ClaimConflictError);
  });

  it('fails alone with IdempotencyUnavailableError when its claim cannot be read back in time', async () => {
    const view = new IdempotencyView(1);
    const claim = new KeyClaim('k', 'fp', 0, { topic: 'i', partition: 0, view, verifyTimeoutMs: 5, now: () => new Date() }, () => {});
    await assert.rejects(claim.begin(fakeTx()), (err: unknown) => err instanceof ParticipantRejection && err.reason instanceof IdempotencyUnavailableError);
  });

  it('marks its records aborted so that a retry of the same request does not wait for them', async () => {
    const view = new IdempotencyView(1, { uncommitted: [100] });
    const claim = claimFor(view, 'k', 100);
    const tx = fakeTx();
    const begun = claim.begin(tx);
    view.applyUncommitted(0, 100, 'k');
    await begun;
    assert.deepEqual(view.unresolved(0, 'k'), [100]);
    claim.aborted();
    assert.deepEqual(view.unresolved(0, 'k'), []);
  });
});
