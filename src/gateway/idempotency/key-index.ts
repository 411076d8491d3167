/**
 * The committed idempotency keys a gateway knows, in 28 bytes a slot instead of a JavaScript Map
 * entry with its outcome (about 0.9 KB a key, measured): an open-addressing hash table with
 * linear probing, laid out as typed arrays (one per field), that holds per key only
 *
 * - a 128-bit hash of the key (key-hash.ts), in place of the key;
 * - the offset of the key's outcome record in the idempotency topic (the key decides the
 *   partition), from which the full outcome is read back when a request must replay it;
 * - the outcome's committedAt, in seconds (rounded up, so a key never expires early), for
 *   expiry; 0 marks an empty slot.
 *
 * Collisions. Two keys with one hash would share a slot: for n keys the chance that any two
 * collide is about n²/2^129, 1.5e-23 at 10^8 keys (a day at 1,000 keys/s is 8.6e7), and clients
 * cannot aim for one (the hash is keyed, key-hash.ts). Even then nothing runs twice but in rare
 * paths (docs/idempotency.md, "Key hashes"): every answer for a known key comes from its record,
 * whose key is checked (replay.ts), or from the recent outcomes, which are held by the full key.
 *
 * No fingerprint hash is kept: a replay needs the record anyway, and a body mismatch (422) is
 * decided from the record too, so a hash of it would save only the read behind a 422, for
 * 8 bytes a key.
 *
 * The capacity is a power of two, at most 3/4 full: past that the table doubles, and while it
 * rehashes the old and the new arrays are both alive, so the peak is 3 times the old table's
 * size (at 10 million keys: 2^24 slots, 470 MB, and 705 MB during the growth that got there).
 * Deletion shifts the following entries of the probe run back (no tombstones), so lookups never
 * slow down with churn.
 */

/** committedAt (seconds) of an outcome that never expires here (no readable committedAt). */
export const NEVER_EXPIRES = 0xffffffff;

const MIN_CAPACITY = 16;
const MAX_CAPACITY = 2 ** 28;

export class KeyIndex {
  private capacity_: number;
  private mask: number;
  /** The key hashes, four words a slot, side by side (one cache line for a probe's compare). */
  private hashes: Uint32Array;
  private offsets: Float64Array;
  /** Seconds since the epoch; 0 = empty slot. */
  private committedAt: Uint32Array;
  private count = 0;
  private sweepCursor = 0;

  constructor(initialCapacity = 1024) {
    let capacity = MIN_CAPACITY;
    while (capacity < initialCapacity && capacity < MAX_CAPACITY) capacity *= 2;
    this.capacity_ = capacity;
    this.mask = capacity - 1;
    this.hashes = new Uint32Array(capacity * 4);
    this.offsets = new Float64Array(capacity);
    this.committedAt = new Uint32Array(capacity);
  }

  /** Keys held (expired ones included, until swept). */
  get size(): number {
    return this.count;
  }

  get capacity(): number {
    return this.capacity_;
  }

  /** Bytes of the table's arrays. */
  get bytes(): number {
    return this.hashes.byteLength + this.offsets.byteLength + this.committedAt.byteLength;
  }

  /** The slot holding this hash (four words at h[at..at+3]), or -1. */
  find(h: Uint32Array, at = 0): number {
    const h0 = h[at]!;
    const h1 = h[at + 1]!;
    const h2 = h[at + 2]!;
    const h3 = h[at + 3]!;
    const hashes = this.hashes;
    const committedAt = this.committedAt;
    for (let slot = h0 & this.mask; ; slot = (slot + 1) & this.mask) {
      if (committedAt[slot] === 0) return -1;
      const w = slot * 4;
      if (hashes[w] === h0 && hashes[w + 1] === h1 && hashes[w + 2] === h2 && hashes[w + 3] === h3) return slot;
    }
  }

  offsetAt(slot: number): number {
    return this.offsets[slot]!;
  }

  committedAtSec(slot: number): number {
    return this.committedAt[slot]!;
  }

  /**
   * Inserts the hash or replaces its entry. committedAtSec: 1 .. NEVER_EXPIRES. `slot`: what
   * find() just answered for this hash, if the caller asked (saves probing twice).
   */
  set(h: Uint32Array, at: number, offset: number, committedAtSec: number, slot = this.find(h, at)): void {
    if (!(committedAtSec >= 1 && committedAtSec <= NEVER_EXPIRES)) throw new RangeError(`committedAt out of range: ${committedAtSec}`);
    if (slot >= 0) {
      this.offsets[slot] = offset;
      this.committedAt[slot] = committedAtSec;
      return;
    }
    if ((this.count + 1) * 4 > this.capacity_ * 3) this.grow();
    this.place(h[at]!, h[at + 1]!, h[at + 2]!, h[at + 3]!, offset, committedAtSec);
    this.count++;
  }

  /** Empties a slot found by find(), shifting the rest of its probe run back. */
  deleteSlot(slot: number): void {
    const hashes = this.hashes;
    const offsets = this.offsets;
    const committedAt = this.committedAt;
    const mask = this.mask;
    let hole = slot;
    for (let next = (hole + 1) & mask; committedAt[next] !== 0; next = (next + 1) & mask) {
      // An entry may move into the hole unless its home lies cyclically in (hole, next]: then
      // it would sit before its home, where a probe from the home never looks.
      const home = hashes[next * 4]! & mask;
      const stays = hole <= next ? hole < home && home <= next : hole < home || home <= next;
      if (stays) continue;
      hashes.copyWithin(hole * 4, next * 4, next * 4 + 4);
      offsets[hole] = offsets[next]!;
      committedAt[hole] = committedAt[next]!;
      hole = next;
    }
    committedAt[hole] = 0;
    this.count--;
  }

  /**
   * Deletes entries whose committedAt (seconds) is at most `expiredAtOrBefore`, walking at most
   * `maxScan` slots on from where the previous call stopped and freeing at most `maxFree`;
   * returns how many it freed. A bounded slice of work per call: a full scan of millions of
   * slots would stall the event loop.
   */
  sweep(expiredAtOrBefore: number, maxFree: number, maxScan: number): number {
    const committedAt = this.committedAt;
    const mask = this.mask;
    let slot = this.sweepCursor & mask;
    let freed = 0;
    for (let scanned = 0; scanned < maxScan && freed < maxFree && this.count > 0; ) {
      const at = committedAt[slot]!;
      if (at !== 0 && at <= expiredAtOrBefore) {
        // The backward shift may move a later entry into this slot: look at it again.
        this.deleteSlot(slot);
        freed++;
        continue;
      }
      slot = (slot + 1) & mask;
      scanned++;
    }
    this.sweepCursor = slot;
    return freed;
  }

  private place(h0: number, h1: number, h2: number, h3: number, offset: number, committedAtSec: number): void {
    const committedAt = this.committedAt;
    let slot = h0 & this.mask;
    while (committedAt[slot] !== 0) slot = (slot + 1) & this.mask;
    const w = slot * 4;
    this.hashes[w] = h0;
    this.hashes[w + 1] = h1;
    this.hashes[w + 2] = h2;
    this.hashes[w + 3] = h3;
    this.offsets[slot] = offset;
    committedAt[slot] = committedAtSec;
  }

  private grow(): void {
    if (this.capacity_ >= MAX_CAPACITY) throw new RangeError(`the idempotency key index is full (${this.count} keys)`);
    const { hashes, offsets, committedAt, capacity_: old } = this;
    this.capacity_ = old * 2;
    this.mask = this.capacity_ - 1;
    this.hashes = new Uint32Array(this.capacity_ * 4);
    this.offsets = new Float64Array(this.capacity_);
    this.committedAt = new Uint32Array(this.capacity_);
    for (let slot = 0; slot < old; slot++) {
      if (committedAt[slot] === 0) continue;
      const w = slot * 4;
      this.place(hashes[w]!, hashes[w + 1]!, hashes[w + 2]!, hashes[w + 3]!, offsets[slot]!, committedAt[slot]!);
    }
  }
}
