// The idempotency key index: its hash (SipHash-2-4-128 against the reference vectors) and the
// open-addressing table (insert, replace, backward-shift delete, growth, the incremental sweep),
// checked against a Map by fast-check with probe runs forced to collide and wrap around.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hashKey, sipHash128, sipKeyFromBytes } from '../../src/gateway/idempotency/key-hash.js';
import { KeyIndex, NEVER_EXPIRES } from '../../src/gateway/idempotency/key-index.js';

describe('SipHash-2-4-128', () => {
  it('matches the reference vectors (key 00..0f, message 00..len-1)', () => {
    const key = sipKeyFromBytes(Uint8Array.from({ length: 16 }, (_, i) => i));
    const vectors: Array<[number, string]> = [
      [0, 'a3817f04ba25a8e66df67214c7550293'],
      [1, 'da87c1d86b99af44347659119b22fc45'],
      [5, '1368875980776f8854527a07690e9627'],
      [7, 'a1f1ebbed8dbc153c0b84aa61ff08239'],
      [8, '3b62a9ba6258f5610f83e264f31497b4'],
      [9, '264499060ad9baabc47f8b02bb6d71ed'],
      [15, '5493e99933b0a8117e08ec0f97cfc3d9'],
      [16, '6ee2a4ca67b054bbfd3315bf85230577'],
      [31, '2939b0183223fafc1723de4f52c43d35'],
      [63, '5150d1772f50834a503e069a973fbd7c'],
    ];
    const out = new Uint32Array(4);
    for (const [length, expected] of vectors) {
      sipHash128(Uint8Array.from({ length }, (_, i) => i), length, out, 0, key);
      assert.equal(Buffer.from(out.buffer).toString('hex'), expected, `length ${length}`);
    }
  });

  it('hashes a key by its UTF-8 bytes, with one key per process', () => {
    const a = new Uint32Array(8);
    hashKey('order-17', a, 0);
    hashKey('order-17', a, 4);
    assert.deepEqual([...a.subarray(0, 4)], [...a.subarray(4)]);
    hashKey('order-18', a, 4);
    assert.notDeepEqual([...a.subarray(0, 4)], [...a.subarray(4)]);
    // non-ASCII: the same as hashing the UTF-8 bytes (and unlike the UTF-16 code units' low bytes)
    const key = 'ünï/€-𝄞';
    hashKey(key, a, 0);
    const bytes = Buffer.from(key, 'utf8');
    const viaBytes = new Uint32Array(4);
    sipHash128(bytes, bytes.length, viaBytes);
    assert.deepEqual([...a.subarray(0, 4)], [...viaBytes]);
    hashKey('x'.repeat(5000), a, 0); // longer than the scratch buffer
  });
});

/** A hash whose first word (the home slot) is chosen, so tests can make probe runs collide. */
function hashOf(id: number, home: number): Uint32Array {
  return Uint32Array.of(home >>> 0, id, id ^ 0x5bd1e995, 7);
}

describe('KeyIndex', () => {
  it('inserts, replaces, finds and deletes, growing at 3/4 full', () => {
    const index = new KeyIndex(16);
    assert.equal(index.capacity, 16);
    for (let i = 0; i < 12; i++) index.set(hashOf(i, i % 3), 0, 100 + i, 1_000 + i);
    assert.equal(index.size, 12);
    assert.equal(index.capacity, 16, '12 of 16: not past 3/4');
    index.set(hashOf(12, 0), 0, 112, 1_012);
    assert.equal(index.capacity, 32, 'the 13th grows it');
    index.set(hashOf(5, 5 % 3), 0, 555, 2_000); // replace
    assert.equal(index.size, 13);
    for (let i = 0; i < 13; i++) {
      const slot = index.find(hashOf(i, i % 3));
      assert.ok(slot >= 0, `key ${i}`);
      assert.equal(index.offsetAt(slot), i === 5 ? 555 : 100 + i);
      assert.equal(index.committedAtSec(slot), i === 5 ? 2_000 : 1_000 + i);
    }
    assert.equal(index.find(hashOf(99, 0)), -1);
    assert.equal(index.find(hashOf(1, 0)), -1, 'same words but one: another key');
    index.deleteSlot(index.find(hashOf(0, 0)));
    assert.equal(index.find(hashOf(0, 0)), -1);
    for (let i = 1; i < 13; i++) assert.ok(index.find(hashOf(i, i % 3)) >= 0, `key ${i} still found after the shift`);
    assert.equal(index.size, 12);
    assert.equal(index.bytes, 32 * 28);
    assert.throws(() => index.set(hashOf(1, 1), 0, 1, 0), RangeError, 'committedAt 0 marks an empty slot');
  });

  it('sweeps expired entries in bounded slices from a cursor, and never one that is not expired', () => {
    const index = new KeyIndex(64);
    for (let i = 0; i < 40; i++) index.set(hashOf(i, i), 0, i, i % 2 === 0 ? 10 : 20);
    index.set(hashOf(40, 3), 0, 40, NEVER_EXPIRES);
    // Key i sits in slot i; the even ones expired (at 10 <= 15).
    assert.equal(index.sweep(15, 5, 64), 5, 'at most maxFree: keys 0 to 8');
    assert.equal(index.sweep(15, Infinity, 8), 3, 'at most maxScan slots, from where it stopped: slots 8 to 15');
    let freed = 8;
    for (let calls = 0; calls < 8; calls++) freed += index.sweep(15, Infinity, 8);
    assert.equal(freed, 20, 'the cursor goes round: every even key, once');
    assert.equal(index.size, 21);
    for (let i = 0; i < 40; i++) assert.equal(index.find(hashOf(i, i)) >= 0, i % 2 === 1, `key ${i}`);
    assert.equal(index.sweep(NEVER_EXPIRES - 1, Infinity, 64), 20, 'never expires: kept');
    assert.ok(index.find(hashOf(40, 3)) >= 0);
  });

  it('behaves as a Map under any sequence of sets, deletes and sweeps (colliding, wrapping probe runs)', () => {
    type Op =
      | { op: 'set'; id: number; home: number; offset: number; at: number }
      | { op: 'delete'; id: number; home: number }
      | { op: 'sweep'; cutoff: number; maxFree: number; maxScan: number };
    const id = fc.nat(60);
    // Homes near the end of a small table: runs wrap around to slot 0.
    const home = fc.oneof(fc.constantFrom(0, 13, 14, 15, 31, 63), fc.nat());
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), id, home, offset: fc.nat(1_000_000), at: fc.integer({ min: 1, max: 50 }) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), id, home }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('sweep' as const), cutoff: fc.integer({ min: 0, max: 50 }), maxFree: fc.integer({ min: 1, max: 10 }), maxScan: fc.integer({ min: 1, max: 200 }) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const index = new KeyIndex(16);
        // Each id has one home (a key has one hash), fixed by its first use.
        const homes = new Map<number, number>();
        const model = new Map<number, { offset: number; at: number }>();
        const hash = (i: number, h: number) => {
          if (!homes.has(i)) homes.set(i, h);
          return hashOf(i, homes.get(i)!);
        };
        for (const o of ops) {
          if (o.op === 'set') {
            index.set(hash(o.id, o.home), 0, o.offset, o.at);
            model.set(o.id, { offset: o.offset, at: o.at });
          } else if (o.op === 'delete') {
            const slot = index.find(hash(o.id, o.home));
            assert.equal(slot >= 0, model.has(o.id));
            if (slot >= 0) index.deleteSlot(slot);
            model.delete(o.id);
          } else {
            const freed = index.sweep(o.cutoff, o.maxFree, o.maxScan);
            assert.ok(freed <= o.maxFree);
            let gone = 0;
            for (const [i, e] of model) {
              if (index.find(hash(i, 0)) >= 0) continue;
              assert.ok(e.at <= o.cutoff, `key ${i} swept but not expired`);
              model.delete(i);
              gone++;
            }
            assert.equal(freed, gone);
          }
          assert.equal(index.size, model.size);
          for (const [i, e] of model) {
            const slot = index.find(hash(i, 0));
            assert.ok(slot >= 0, `key ${i} lost`);
            assert.equal(index.offsetAt(slot), e.offset);
            assert.equal(index.committedAtSec(slot), e.at);
          }
        }
        // A full sweep frees every expired entry.
        const expired = [...model.values()].filter((e) => e.at <= 25).length;
        assert.equal(index.sweep(25, Infinity, index.capacity), expired);
        assert.equal(index.size, model.size - expired);
      }),
      { numRuns: 500 },
    );
  });
});
