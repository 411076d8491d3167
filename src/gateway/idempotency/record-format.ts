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

/** What loading needs of a record: its kind and its time (claimedAt or committedAt, ms; NaN when unreadable). */
export interface RecordSummary {
  kind: 'claim' | 'outcome';
  at: number;
}

/**
 * decodeRecord's kind and time without JSON.parse for the records txgate writes (loading reads
 * every retained record, and parsing each costs more than everything else the gateway does
 * with it): it recognises encodeClaim's and encodeOutcome's exact layouts, and hands anything
 * else to decodeRecord.
 *
 * An outcome is recognised by its frame: `{"fingerprint":"<no quote or backslash>","records":[`,
 * then no bracket or backslash (so nothing can close the array and add a key such as "pending"),
 * then `],"committedAt":"<24-character ISO time>"}`. The records inside are not checked: a
 * record that only looks like an outcome (written by something else, not valid JSON) is taken as
 * one, which is the cautious side: its key counts as committed, and replaying it fails (503)
 * when its record cannot be decoded, so a request with that key never runs.
 */
export function summarizeRecord(value: Buffer): RecordSummary | undefined {
  const fast = summarizeFast(value);
  if (fast) return fast;
  const record = decodeRecord(value);
  if (!record) return undefined;
  return record.kind === 'claim' ? { kind: 'claim', at: Date.parse(record.claim.claimedAt) } : { kind: 'outcome', at: Date.parse(record.outcome.committedAt) };
}

const bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const OUTCOME_HEAD = bytes('{"fingerprint":"');
const OUTCOME_RECORDS = bytes('","records":[');
const OUTCOME_TAIL = bytes('],"committedAt":"');
const CLAIM_HEAD = bytes('{"pending":true,"fingerprint":"');
const CLAIM_TAIL = bytes('","claimedAt":"');
const ISO_LENGTH = 24; // 2026-11-30T12:34:56.789Z
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function summarizeFast(v: Buffer): RecordSummary | undefined {
  const length = v.length;
  if (length < 2 || v[length - 1] !== 0x7d /* } */ || v[length - 2] !== QUOTE) return undefined;
  const timeAt = length - 2 - ISO_LENGTH;
  if (matches(v, 0, OUTCOME_HEAD)) {
    const fingerprintEnd = stringEnd(v, OUTCOME_HEAD.length);
    const tailAt = timeAt - OUTCOME_TAIL.length;
    const recordsAt = fingerprintEnd + OUTCOME_RECORDS.length;
    if (fingerprintEnd < 0 || recordsAt > tailAt || !matches(v, fingerprintEnd, OUTCOME_RECORDS) || !matches(v, tailAt, OUTCOME_TAIL)) return undefined;
    for (let i = recordsAt; i < tailAt; i++) {
      const b = v[i]!;
      if (b === 0x5b /* [ */ || b === 0x5d /* ] */ || b === BACKSLASH) return undefined;
    }
    const at = isoTime(v, timeAt);
    return at === undefined ? undefined : { kind: 'outcome', at };
  }
  if (matches(v, 0, CLAIM_HEAD)) {
    const fingerprintEnd = stringEnd(v, CLAIM_HEAD.length);
    if (fingerprintEnd < 0 || fingerprintEnd + CLAIM_TAIL.length !== timeAt || !matches(v, fingerprintEnd, CLAIM_TAIL)) return undefined;
    const at = isoTime(v, timeAt);
    return at === undefined ? undefined : { kind: 'claim', at };
  }
  return undefined;
}

function matches(v: Buffer, at: number, expected: Uint8Array): boolean {
  if (at < 0 || at + expected.length > v.length) return false;
  for (let i = 0; i < expected.length; i++) if (v[at + i] !== expected[i]) return false;
  return true;
}

/** The index of the quote that ends a JSON string starting at `from`, or -1 if it has an escape. */
function stringEnd(v: Buffer, from: number): number {
  for (let i = from; i < v.length; i++) {
    const b = v[i]!;
    if (b === QUOTE) return i;
    if (b === BACKSLASH || b < 0x20) return -1;
  }
  return -1;
}

/** Date.parse of YYYY-MM-DDTHH:MM:SS.sssZ at v[at..], or undefined for anything else. */
function isoTime(v: Buffer, at: number): number | undefined {
  if (v[at + 4] !== 0x2d || v[at + 7] !== 0x2d || v[at + 10] !== 0x54 || v[at + 13] !== 0x3a || v[at + 16] !== 0x3a || v[at + 19] !== 0x2e || v[at + 23] !== 0x5a) {
    return undefined;
  }
  const year = digitsAt(v, at, 4);
  const month = digitsAt(v, at + 5, 2);
  const day = digitsAt(v, at + 8, 2);
  const hour = digitsAt(v, at + 11, 2);
  const minute = digitsAt(v, at + 14, 2);
  const second = digitsAt(v, at + 17, 2);
  const ms = digitsAt(v, at + 20, 3);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || ms < 0) return undefined;
  // Out of range, or a year below 100 (rare enough to leave to Date.parse).
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    return Date.parse(v.toString('latin1', at, at + ISO_LENGTH));
  }
  return (((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second) * 1000 + ms;
}

function daysInMonth(year: number, month: number): number {
  if (month !== 2) return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's algorithm): what Date.UTC computes, at a fraction of its cost. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** The decimal number in v[from, from + digits), or -1 if any of them is not a digit. (Not a closure in isoTime: creating one per call was a third of its cost.) */
function digitsAt(v: Buffer, from: number, digits: number): number {
  let n = 0;
  for (let i = from; i < from + digits; i++) {
    const d = v[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
