/**
 * The verifier's judgement: a pure function from what was sent, what the gateways answered and
 * what a read_committed consumer found, to the anomaly counts. No I/O, so every rule is unit-tested
 * on constructed inputs.
 *
 * Records are identified by their key, unique within a run. Callers pass only records carrying
 * this run's key prefix (the topics may hold other data).
 */
import type { CheckResult, Example, LaneOutcome, Position, ReadRecord, RecordAnomalies, SentRecord, SentRequest } from './types.js';

/** Examples kept per anomaly kind: enough to start from, small enough for a report. */
export const EXAMPLES_PER_KIND = 5;

/** A request's outcome, decided from all of its lanes' answers. */
export type Decision =
  | { kind: 'acknowledged'; positions: Position[]; conflicting: boolean }
  | { kind: 'failed'; status: number; code?: string | undefined }
  | { kind: 'undecided' };

/**
 * One 200 is enough to call a request acknowledged: the gateway promised its records are
 * committed. Definitive answers that disagree are themselves an anomaly (the idempotency
 * promise says every answer for a key describes the same single write).
 */
export function decide(outcomes: LaneOutcome[]): Decision {
  const acks = outcomes.filter((o) => o.kind === 'acknowledged');
  const fails = outcomes.filter((o) => o.kind === 'failed');
  const first = acks[0];
  if (first) {
    const same = acks.every((a) => samePositions(a.positions, first.positions));
    return { kind: 'acknowledged', positions: first.positions, conflicting: !same || fails.length > 0 };
  }
  const fail = fails[0];
  if (fail) return { kind: 'failed', status: fail.status, code: fail.code };
  return { kind: 'undecided' };
}

function samePositions(a: Position[], b: Position[]): boolean {
  return a.length === b.length && a.every((p, i) => samePosition(p, b[i]));
}

function samePosition(a: Position | undefined, b: Position | undefined): boolean {
  return a !== undefined && b !== undefined && a.topic === b.topic && a.partition === b.partition && a.offset === b.offset;
}

const where = (p: Position): string => `${p.topic}/${p.partition}@${p.offset}`;

interface Expected {
  request: SentRequest;
  index: number;
  record: SentRecord;
  copies: Position[];
}

export function check(requests: SentRequest[], read: ReadRecord[]): CheckResult {
  const anomalies: RecordAnomalies = { lost: 0, duplicated: 0, partial: 0, phantom: 0, misplaced: 0, corrupt: 0, unexpected: 0, conflicting: 0 };
  const examples: Example[] = [];
  const shown = new Map<keyof RecordAnomalies, number>();
  const flag = (kind: keyof RecordAnomalies, example: Omit<Example, 'kind'>): void => {
    anomalies[kind] += 1;
    const n = shown.get(kind) ?? 0;
    if (n < EXAMPLES_PER_KIND) {
      shown.set(kind, n + 1);
      examples.push({ kind, ...example });
    }
  };

  const byKey = new Map<string, Expected>();
  let sentRecords = 0;
  for (const request of requests) {
    request.records.forEach((record, index) => {
      byKey.set(record.key, { request, index, record, copies: [] });
      sentRecords += 1;
    });
  }

  for (const r of read) {
    const expected = r.key === null ? undefined : byKey.get(r.key);
    if (!expected) {
      flag('unexpected', { recordKey: r.key ?? undefined, detail: `no request sent key ${JSON.stringify(r.key)} (found at ${where(r)})` });
    } else if (r.topic !== expected.record.topic || r.value !== expected.record.value) {
      flag('corrupt', {
        idempotencyKey: expected.request.idempotencyKey,
        recordKey: expected.record.key,
        detail: `at ${where(r)}: sent to ${expected.record.topic} with value ${clip(expected.record.value)}, found value ${clip(r.value)}`,
      });
    } else {
      expected.copies.push({ topic: r.topic, partition: r.partition, offset: r.offset });
    }
  }

  const requestCounts = { sent: requests.length, acknowledged: 0, failed: 0, undecided: 0, undecidedPresent: 0, undecidedAbsent: 0 };
  let acknowledgedRecords = 0;
  let extraCopies = 0;
  for (const request of requests) {
    const decision = decide(request.outcomes);
    const ids = { idempotencyKey: request.idempotencyKey };
    if (decision.kind === 'acknowledged') {
      requestCounts.acknowledged += 1;
      acknowledgedRecords += request.records.length;
      if (decision.conflicting) flag('conflicting', { ...ids, detail: `answers disagree: ${describeOutcomes(request.outcomes)}` });
    } else if (decision.kind === 'failed') {
      requestCounts.failed += 1;
    } else {
      requestCounts.undecided += 1;
    }

    let present = 0;
    request.records.forEach((record, index) => {
      const copies = byKey.get(record.key)?.copies ?? [];
      const rec = { ...ids, recordKey: record.key };
      if (copies.length > 0) present += 1;
      if (copies.length > 1) {
        extraCopies += copies.length - 1;
        flag('duplicated', { ...rec, detail: `${copies.length} copies: ${copies.map(where).join(', ')}` });
      }
      if (decision.kind === 'acknowledged') {
        const reported = decision.positions[index];
        if (copies.length === 0) {
          flag('lost', { ...rec, detail: `acknowledged at ${reported ? where(reported) : 'an unreported position'}, not found` });
        } else if (!copies.some((c) => samePosition(c, reported))) {
          flag('misplaced', { ...rec, detail: `acknowledged at ${reported ? where(reported) : 'an unreported position'}, found at ${copies.map(where).join(', ')}` });
        }
      } else if (decision.kind === 'failed' && copies.length > 0) {
        flag('phantom', { ...rec, detail: `the request failed with ${decision.status}${decision.code ? ` ${decision.code}` : ''}, yet the record is at ${copies.map(where).join(', ')}` });
      }
    });

    if (present > 0 && present < request.records.length) {
      flag('partial', { ...ids, detail: `${present} of ${request.records.length} records present (${decision.kind})` });
    } else if (decision.kind === 'undecided') {
      if (present === 0) requestCounts.undecidedAbsent += 1;
      else requestCounts.undecidedPresent += 1;
    }
  }

  return {
    anomalies,
    requests: requestCounts,
    records: { sent: sentRecords, acknowledged: acknowledgedRecords, read: read.length, extraCopies },
    examples,
  };
}

function describeOutcomes(outcomes: LaneOutcome[]): string {
  return outcomes
    .map((o) =>
      o.kind === 'acknowledged' ? `200 at ${o.positions.map(where).join(' ')}` : o.kind === 'failed' ? `${o.status}${o.code ? ` ${o.code}` : ''}` : `undecided (${o.last})`,
    )
    .join('; ');
}

function clip(s: string | null): string {
  if (s === null) return 'null';
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);
}
