/**
 * The in-memory view: what the two readers have read, and what it means for each key
 * (docs/idempotency.md states the protocol this serves). Their positions and the waits on them
 * are in cursors.ts; the records whose transaction may still be open in unresolved.ts.
 *
 * Committed outcomes are held in the key index (key-index.ts: a hash of the key, the outcome
 * record's offset and its committedAt, 28 bytes a slot), and the most recent ones in full
 * (recent-outcomes.ts); replaying any other key reads its outcome record back from the topic
 * (replay.ts). They are kept for a retention window, measured from their committedAt: an older
 * one is not remembered when read, is no longer answered by lookup(), and sweep() frees it. Only
 * outcomes expire; the records read uncommitted whose transaction may still be open are tracked
 * until the committed cursor passes them, however old, because they are what makes a second
 * writer of a key wait for the first.
 */
import { Cursors, type Cursor, type WaitOptions } from './cursors.js';
import { hashKey } from './key-hash.js';
import { KeyIndex, NEVER_EXPIRES } from './key-index.js';
import { RecentOutcomes, type RecentOutcomesLimits } from './recent-outcomes.js';
import { decodeRecord, summarizeRecord, type CommittedOutcome } from './record-format.js';
import { UnresolvedRecords } from './unresolved.js';

export type { Cursor } from './cursors.js';

/** A committed outcome the view knows for a key. */
export interface KnownOutcome {
  /** Offset of the outcome record in the idempotency topic (in the key's partition). */
  offset: number;
  /** The full outcome when the recent outcomes hold it; otherwise it is read back from the topic. */
  outcome: CommittedOutcome | undefined;
}

export interface ViewOptions {
  /** How long a committed outcome is answered, from its committedAt (default: forever). */
  retentionMs?: number;
  /** The clock, in milliseconds since the epoch (default Date.now). */
  now?: () => number;
  /** Bounds of the recent outcomes held in full (default 50,000 outcomes, 250,000 records). */
  recentOutcomes?: RecentOutcomesLimits;
}

/** The earlier name of ViewOptions. */
export type ViewRetention = ViewOptions;

export class IdempotencyView {
  private readonly index = new KeyIndex();
  private readonly recent: RecentOutcomes;
  /** Scratch for one key's hash. */
  private readonly hash = new Uint32Array(4);
  /**
   * Per partition, the offset from which committed records are decoded in full and their
   * outcomes held in the recent outcomes: below it (the bulk of loading at start) only the kind
   * and time of each record are read, and only the key index is filled. It sits a little before
   * the end of the load, so that retries that arrive just after a restart replay from memory.
   */
  private readonly fullDecodeFrom: number[];
  private readonly cursors: Cursors;
  private readonly unresolvedRecords: UnresolvedRecords;
  /**
   * Claims read by the committed consumer whose outcome it has not read yet, per key: their
   * transaction COMMITTED (a read_committed consumer never delivers an open or aborted one), so the
   * key is taken, and its outcome lies further on, possibly beyond this instance's last stable
   * offset. Passing a claim is not knowing its outcome: docs/idempotency.md, "the LSO trap".
   */
  private readonly committedClaims = new Map<string, { offset: number; claimedAt: number }>();
  private readonly retentionMs: number;
  private readonly now: () => number;
  private expiredOnArrival = 0;

  /**
   * `start.uncommitted` is where loading ends (the partitions' last stable offsets at start):
   * records below it are loaded cheaply (see fullDecodeFrom).
   */
  constructor(
    readonly partitions: number,
    start: { committed?: number[]; uncommitted?: number[] } = {},
    options: ViewOptions = {},
  ) {
    this.retentionMs = options.retentionMs ?? Number.POSITIVE_INFINITY;
    this.now = options.now ?? Date.now;
    this.recent = new RecentOutcomes(options.recentOutcomes);
    this.cursors = new Cursors(partitions, start);
    this.unresolvedRecords = new UnresolvedRecords(partitions);
    // (Records per partition; a claim and an outcome per key: twice as many records as outcomes.
    // Holding no outcomes in full, nothing is decoded in full.)
    const tail = Math.ceil((2 * this.recent.maxOutcomes) / Math.max(1, partitions));
    this.fullDecodeFrom = Array.from({ length: partitions }, (_, p) =>
      this.recent.maxOutcomes === 0 ? Number.POSITIVE_INFINITY : Math.max(0, (start.uncommitted?.[p] ?? 0) - tail),
    );
  }

  /** Committed outcomes held (expired ones included until the next sweep). */
  get size(): number {
    return this.index.size;
  }

  /** Outcomes held in full (the recent ones). */
  get cachedOutcomes(): number {
    return this.recent.size;
  }

  /** Bytes of the key index's tables. */
  get indexBytes(): number {
    return this.index.bytes;
  }

  /** Outcomes read that were already past the retention, so never held (at start: the expired keys skipped). */
  get skippedExpired(): number {
    return this.expiredOnArrival;
  }

  position(cursor: Cursor, partition: number): number {
    return this.cursors.position(cursor, partition);
  }

  /** The key's committed outcome, unless it is past the retention (then the key is unknown: a request runs as new). */
  lookup(key: string): KnownOutcome | undefined {
    const slot = this.slotOf(key);
    if (slot < 0 || this.expired(this.index.committedAtSec(slot))) return undefined;
    const offset = this.index.offsetAt(slot);
    const recent = this.recent.get(key);
    return { offset, outcome: recent?.offset === offset ? recent.outcome : undefined };
  }

  /**
   * Holds an outcome read back from the topic in full (a client that retries again replays it
   * from memory), if it is still the key's current one.
   */
  cacheOutcome(key: string, outcome: CommittedOutcome, offset: number): void {
    const slot = this.slotOf(key);
    if (slot >= 0 && this.index.offsetAt(slot) === offset) this.recent.set(key, outcome, offset);
  }

  /** Offsets of records for this key that were read uncommitted and whose transaction is not known to have ended. */
  unresolved(partition: number, key: string): readonly number[] {
    return this.unresolvedRecords.of(partition, key);
  }

  /**
   * The offset of a committed claim for this key whose outcome the committed consumer has not
   * read yet (undefined when there is none, or when it is past the retention).
   */
  committedClaim(key: string): number | undefined {
    const claim = this.committedClaims.get(key);
    if (!claim) return undefined;
    if (claim.claimedAt + this.retentionMs <= this.now()) {
      this.committedClaims.delete(key);
      return undefined;
    }
    return claim.offset;
  }

  /** Committed claims whose outcome is not read yet (normally a handful: each is followed by its outcome). */
  get committedClaimsHeld(): number {
    return this.committedClaims.size;
  }

  /** A record read by the read_committed consumer. */
  applyCommitted(partition: number, offset: number, key: string | undefined, value: Buffer | null | undefined): void {
    if (key !== undefined) {
      if (value === null || value === undefined) this.forget(key, offset);
      else if (offset >= (this.fullDecodeFrom[partition] ?? 0)) {
        // Our own commit, remembered when it committed: nothing new.
        if (this.recent.get(key)?.offset === offset) this.dropClaimBefore(key, offset);
        else {
          const record = decodeRecord(value);
          if (record?.kind === 'outcome') this.remember(key, record.outcome, offset);
          else if (record?.kind === 'claim') this.noteCommittedClaim(key, offset, Date.parse(record.claim.claimedAt));
        }
      } else {
        const record = summarizeRecord(value);
        if (record?.kind === 'outcome') {
          this.dropClaimBefore(key, offset);
          this.hold(key, record.at, offset, undefined);
        } else if (record?.kind === 'claim') this.noteCommittedClaim(key, offset, record.at);
      }
    }
    this.advance('committed', partition, offset + 1);
  }

  private noteCommittedClaim(key: string, offset: number, claimedAt: number): void {
    // Our own commit's claim: its outcome (further on) is remembered already. (An outcome read by
    // the committed consumer never precedes its claim, and our own outcomes stay in the recent
    // ones far longer than the consumer takes to pass them; if one did not, the claim would be
    // held until its outcome is read, which only makes a request wait for it.)
    const recent = this.recent.get(key);
    if (recent && recent.offset > offset) return;
    const current = this.committedClaims.get(key);
    if (current && current.offset > offset) return;
    // A claim without a readable time (not written by txgate) counts as claimed now.
    this.committedClaims.set(key, { offset, claimedAt: Number.isFinite(claimedAt) ? claimedAt : this.now() });
  }

  /** A record read by the read_uncommitted consumer. */
  applyUncommitted(partition: number, offset: number, key: string | undefined): void {
    if (key !== undefined && offset >= this.position('committed', partition)) this.unresolvedRecords.add(partition, offset, key);
    this.advance('uncommitted', partition, offset + 1);
  }

  remember(key: string, outcome: CommittedOutcome, offset: number): void {
    this.dropClaimBefore(key, offset);
    this.hold(key, Date.parse(outcome.committedAt), offset, outcome);
  }

  /**
   * Frees up to `maxFree` outcomes past the retention, looking at up to `maxScan` slots of the
   * key index from where the previous sweep stopped (by default a 64th of the index, at least
   * 65,536 slots: a bounded slice of work per call, so the event loop never stalls, and a full pass
   * every 64 calls); returns how many it freed. lookup() is exact regardless. Never touches
   * unresolved records.
   */
  sweep(maxFree = Number.POSITIVE_INFINITY, maxScan = Math.min(this.index.capacity, Math.max(65_536, this.index.capacity / 64))): number {
    if (!Number.isFinite(this.retentionMs)) return 0;
    // Expired when committedAt + retention <= now, committedAt in whole seconds.
    return this.index.sweep(Math.floor((this.now() - this.retentionMs) / 1000), maxFree, maxScan);
  }

  /** Our transaction holding these records was aborted: they will never become visible. */
  markAborted(partition: number, offsets: Iterable<number>): void {
    this.unresolvedRecords.markAborted(partition, offsets, this.position('committed', partition));
  }

  /**
   * After our claim at `claimOffset`: did another writer claim or commit this key since the
   * decision at `horizon`? `own` are offsets this request wrote itself (in earlier attempts too).
   * Call only once the uncommitted cursor has passed `claimOffset`.
   */
  conflicts(partition: number, key: string, horizon: number, claimOffset: number, own: ReadonlySet<number>): boolean {
    // Not lookup(): an outcome committed since the horizon is a conflict even if expired. (It
    // cannot have been swept already: it committed after our decision, and the retention is far
    // longer than a transaction may stay open.)
    const slot = this.slotOf(key);
    if (slot >= 0) {
      const offset = this.index.offsetAt(slot);
      if (offset >= horizon && !own.has(offset)) return true;
    }
    // Another transaction with a claim for the key committed, and its outcome is not read yet
    // (it may lie beyond our own open transaction, which holds our committed cursor back).
    const claim = this.committedClaim(key);
    if (claim !== undefined && !own.has(claim)) return true;
    return this.unresolved(partition, key).some((o) => o >= horizon && o < claimOffset && !own.has(o));
  }

  /** Moves a cursor forward (never back) and wakes whoever waits for it. */
  advance(cursor: Cursor, partition: number, position: number): void {
    // The unresolved records are passed before any waiter can look again.
    if (cursor === 'committed' && position > this.position(cursor, partition) && partition < this.partitions) this.unresolvedRecords.pass(partition, position);
    this.cursors.advance(cursor, partition, position);
  }

  /** Resolves once the cursor reaches `target`; IdempotencyUnavailableError at the deadline. */
  waitFor(cursor: Cursor, partition: number, target: number, opts: WaitOptions): Promise<void> {
    return this.cursors.waitFor(cursor, partition, target, opts);
  }

  /** Fails every waiter (the store is closing). */
  failWaiters(err: Error): void {
    this.cursors.failWaiters(err);
  }

  private slotOf(key: string): number {
    hashKey(key, this.hash);
    return this.index.find(this.hash);
  }

  /** committedAt in whole seconds, rounded up (so never early), as the key index holds it. */
  private expired(committedAtSec: number): boolean {
    return committedAtSec !== NEVER_EXPIRES && committedAtSec * 1000 + this.retentionMs <= this.now();
  }

  /** Holds the key's outcome at `offset` (in full too, if given), unless a newer one is held. */
  private hold(key: string, committedAt: number, offset: number, outcome: CommittedOutcome | undefined): void {
    const slot = this.slotOf(key);
    if (slot >= 0 && this.index.offsetAt(slot) >= offset) {
      if (outcome && this.index.offsetAt(slot) === offset) this.recent.set(key, outcome, offset);
      return;
    }
    if (committedAt + this.retentionMs <= this.now()) {
      // Past the retention already (loading old records): the key is unknown, and whatever an
      // older record said about it is older still.
      if (slot >= 0) this.index.deleteSlot(slot);
      this.recent.delete(key);
      this.expiredOnArrival++;
      return;
    }
    // An outcome without a readable committedAt (not written by txgate) never expires here; the
    // topic's own retention removes it from the broker.
    const seconds = Number.isFinite(committedAt) ? Math.min(NEVER_EXPIRES - 1, Math.max(1, Math.ceil(committedAt / 1000))) : NEVER_EXPIRES;
    this.index.set(this.hash, 0, offset, seconds, slot);
    if (outcome) this.recent.set(key, outcome, offset);
    else this.recent.delete(key);
  }

  /** A tombstone at `offset`: the key's records before it are gone. */
  private forget(key: string, offset: number): void {
    const slot = this.slotOf(key);
    if (slot >= 0 && this.index.offsetAt(slot) < offset) this.index.deleteSlot(slot);
    const recent = this.recent.get(key);
    if (recent && recent.offset < offset) this.recent.delete(key);
    this.dropClaimBefore(key, offset);
  }

  /** An outcome (or a tombstone) at `offset` resolves the key's committed claims before it. */
  private dropClaimBefore(key: string, offset: number): void {
    const claim = this.committedClaims.get(key);
    if (claim && claim.offset < offset) this.committedClaims.delete(key);
  }
}
