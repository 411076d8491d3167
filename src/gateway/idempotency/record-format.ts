/**
 * The record format of the idempotency topic: for each key, a `pending` claim (written before
 * the request's data) and then the committed outcome (written after the data's offsets are known),
 * both as JSON.
 */
import type { RecordMetadata } from '../../pool/producer-port.js';

export interface CommittedOutcome {
  fingerprint: string;
  records: RecordMetadata[];
  committedAt: string;
}

export interface PendingClaim {
  pending: true;
  fingerprint: string;
  claimedAt: string;
}

export function encodeClaim(claim: PendingClaim): Buffer {
  return Buffer.from(JSON.stringify(claim));
}

export function encodeOutcome(outcome: CommittedOutcome): Buffer {
  return Buffer.from(JSON.stringify(outcome));
}

export type IdempotencyRecord = { kind: 'claim'; claim: PendingClaim } | { kind: 'outcome'; outcome: CommittedOutcome };

/** A claim, an outcome, or undefined for anything that is not ours. */
export function decodeRecord(value: Buffer | null | undefined): IdempotencyRecord | undefined {
  if (!value) return undefined;
  let v: Partial<CommittedOutcome & PendingClaim>;
  try {
    v = JSON.parse(value.toString('utf8')) as Partial<CommittedOutcome & PendingClaim>;
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object' || typeof v.fingerprint !== 'string') return undefined;
  if (v.pending === true) return { kind: 'claim', claim: { pending: true, fingerprint: v.fingerprint, claimedAt: String(v.claimedAt ?? '') } };
  if (!Array.isArray(v.records)) return undefined;
  const records = v.records.filter(
    (r): r is RecordMetadata => !!r && typeof r.topic === 'string' && typeof r.partition === 'number' && typeof r.offset === 'string',
  );
  return { kind: 'outcome', outcome: { fingerprint: v.fingerprint, records, committedAt: String(v.committedAt ?? '') } };
}

/** undefined for claims and for anything that is not ours. */
export function decodeOutcome(value: Buffer | null | undefined): CommittedOutcome | undefined {
  const r = decodeRecord(value);
  return r?.kind === 'outcome' ? r.outcome : undefined;
}
