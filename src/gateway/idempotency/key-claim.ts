/**
 * One keyed request's part in a transaction: the claim protocol that closes the race between
 * two writers of one key (store.ts's header explains it).
 */
import type { OutgoingRecord, RecordMetadata } from '../../pool/producer-port.js';
import type { Transaction } from '../../pool/types.js';
import { ParticipantRejection, type BatchParticipant } from '../group-commit/participant.js';
import { encodeClaim, encodeOutcome, type CommittedOutcome, type PendingClaim } from './record-format.js';
import type { IdempotencyView } from './view.js';

/** Our claim lost to another writer of the same key: decide the key again. */
export class ClaimConflictError extends Error {
  constructor(readonly key: string) {
    super(`another writer claimed idempotency key ${JSON.stringify(key)} concurrently`);
    this.name = 'ClaimConflictError';
  }
}

export interface KeyClaimContext {
  topic: string;
  partition: number;
  view: IdempotencyView;
  /** How long to wait, inside the transaction, for the read_uncommitted consumer to reach our claim. */
  verifyTimeoutMs: number;
  now(): Date;
}

/**
 * The right to run one keyed request (this instance holds the key in flight until release()).
 * As a batch participant it writes the claim first, verifies nobody else claimed the key since
 * the decision, and writes the outcome after the data.
 */
export class KeyClaim implements BatchParticipant {
  /** Offsets this request wrote to the idempotency topic, in every attempt. */
  readonly own = new Set<number>();
  private attemptOffsets: number[] = [];
  private outcome: CommittedOutcome | undefined;
  private outcomeOffset: number | undefined;
  private released = false;

  constructor(
    readonly key: string,
    readonly fingerprint: string,
    /** The read_uncommitted position up to which the key was decided unknown. */
    public horizon: number,
    private readonly ctx: KeyClaimContext,
    private readonly onRelease: (claim: KeyClaim) => void,
  ) {}

  get partition(): number {
    return this.ctx.partition;
  }

  async begin(tx: Transaction): Promise<void> {
    this.attemptOffsets = [];
    this.outcome = undefined;
    const claim: PendingClaim = { pending: true, fingerprint: this.fingerprint, claimedAt: this.ctx.now().toISOString() };
    // Sent before any await: the transaction's first record on this partition.
    const sent = tx.send(this.record(encodeClaim(claim)));
    const offset = this.noteOffset((await sent)[0]);
    try {
      await this.ctx.view.waitFor('uncommitted', this.partition, offset + 1, {
        timeoutMs: this.ctx.verifyTimeoutMs,
        what: 'the idempotency topic (verifying the key claim)',
      });
    } catch (err) {
      throw new ParticipantRejection(err);
    }
    if (this.ctx.view.conflicts(this.partition, this.key, this.horizon, offset, this.own)) {
      throw new ParticipantRejection(new ClaimConflictError(this.key));
    }
  }

  async finish(tx: Transaction, records: RecordMetadata[]): Promise<void> {
    const outcome: CommittedOutcome = { fingerprint: this.fingerprint, records, committedAt: this.ctx.now().toISOString() };
    const [md] = await tx.send(this.record(encodeOutcome(outcome)));
    this.outcomeOffset = this.noteOffset(md);
    this.outcome = outcome;
  }

  committed(): void {
    if (this.outcome && this.outcomeOffset !== undefined) this.ctx.view.remember(this.key, this.outcome, this.outcomeOffset);
  }

  aborted(): void {
    this.ctx.view.markAborted(this.partition, this.attemptOffsets);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
  }

  private record(value: Buffer): OutgoingRecord {
    return { topic: this.ctx.topic, partition: this.partition, key: Buffer.from(this.key, 'utf8'), value };
  }

  private noteOffset(md: RecordMetadata | undefined): number {
    if (!md) throw new Error('no metadata for the idempotency record');
    const offset = Number(md.offset);
    this.own.add(offset);
    this.attemptOffsets.push(offset);
    return offset;
  }
}
