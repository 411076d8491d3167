// The verifier's checker on constructed inputs: each anomaly kind is found, a clean run has
// none, undecided requests are sorted into present / absent, and the report's verdict line and
// exit code follow the counts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { check, decide } from '../../src/verify/checker.js';
import { buildRecords } from '../../src/verify/payload.js';
import { buildReport, exitCode, verdictLine } from '../../src/verify/report.js';
import type { LoadResult } from '../../src/verify/load.js';
import type { LaneOutcome, Position, ReadRecord, RecordAnomalies, SentRequest } from '../../src/verify/types.js';

const shape = { keyPrefix: 'verify-', runId: 'run1', topics: ['t'], recordsPerRequest: 2, valueBytes: 40 };

/** Request `id` (2 records), and the positions a gateway would give them: partition id % 3, offsets 2*id, 2*id+1. */
function request(id: number, outcomes?: LaneOutcome[]): SentRequest {
  const records = buildRecords(shape, id);
  const positions: Position[] = records.map((r, i) => ({ topic: r.topic, partition: id % 3, offset: String(2 * id + i) }));
  return { id, idempotencyKey: `verify-run1-${id}`, records, outcomes: outcomes ?? [{ kind: 'acknowledged', positions, replayed: false }] };
}

/** Every record of the request, read back where its 200 said (or where a commit would have put it). */
function stored(req: SentRequest): ReadRecord[] {
  return req.records.map((r, i) => ({ topic: r.topic, partition: req.id % 3, offset: String(2 * req.id + i), key: r.key, value: r.value }));
}

const none: RecordAnomalies = { lost: 0, duplicated: 0, partial: 0, phantom: 0, misplaced: 0, corrupt: 0, unexpected: 0, conflicting: 0 };

const failed: LaneOutcome = { kind: 'failed', status: 422, code: 'TXGATE_RECORD_REJECTED' };
const undecided: LaneOutcome = { kind: 'undecided', last: '504 TXGATE_TRANSACTION_OUTCOME_UNKNOWN' };

describe('check', () => {
  it('finds nothing wrong in a clean run', () => {
    const requests = [0, 1, 2, 3].map((id) => request(id));
    const result = check(requests, requests.flatMap(stored));
    assert.deepEqual(result.anomalies, none);
    assert.deepEqual(result.requests, { sent: 4, acknowledged: 4, failed: 0, undecided: 0, undecidedPresent: 0, undecidedAbsent: 0 });
    assert.deepEqual(result.records, { sent: 8, acknowledged: 8, read: 8, extraCopies: 0 });
    assert.deepEqual(result.examples, []);
  });

  it('counts an acknowledged record that is missing as lost (and its request as partial)', () => {
    const requests = [request(0), request(1)];
    const read = requests.flatMap(stored).filter((r) => r.key !== requests[1]!.records[0]!.key);
    const result = check(requests, read);
    assert.deepEqual(result.anomalies, { ...none, lost: 1, partial: 1 });
    assert.equal(result.examples.find((e) => e.kind === 'lost')?.recordKey, requests[1]!.records[0]!.key);
  });

  it('counts a wholly missing acknowledged request as lost records, not as partial', () => {
    const requests = [request(0), request(1)];
    const result = check(requests, stored(requests[0]!));
    assert.deepEqual(result.anomalies, { ...none, lost: 2 });
  });

  it('counts a record present twice as duplicated once, with its extra copy', () => {
    const requests = [request(0), request(1)];
    const copy = { ...stored(requests[1]!)[1]!, offset: '999' };
    const result = check(requests, [...requests.flatMap(stored), copy]);
    assert.deepEqual(result.anomalies, { ...none, duplicated: 1 });
    assert.equal(result.records.extraCopies, 1);
    assert.match(result.examples[0]!.detail, /2 copies: t\/1@3, t\/1@999/);
  });

  it('counts records of a definitively failed request that are present as phantom', () => {
    const requests = [request(0), request(1, [failed])];
    const result = check(requests, requests.flatMap(stored));
    assert.deepEqual(result.anomalies, { ...none, phantom: 2 });
    assert.equal(result.requests.failed, 1);
    assert.match(result.examples[0]!.detail, /422 TXGATE_RECORD_REJECTED/);
  });

  it('a failed request with nothing present is no anomaly', () => {
    const requests = [request(0), request(1, [failed])];
    const result = check(requests, stored(requests[0]!));
    assert.deepEqual(result.anomalies, none);
  });

  it('counts a record found elsewhere than its 200 said as misplaced', () => {
    const requests = [request(0)];
    const read = stored(requests[0]!);
    read[1] = { ...read[1]!, partition: 2 };
    const result = check(requests, read);
    assert.deepEqual(result.anomalies, { ...none, misplaced: 1 });
  });

  it('a 200 without positions makes its present records misplaced', () => {
    const req = request(0, [{ kind: 'acknowledged', positions: [], replayed: false }]);
    assert.deepEqual(check([req], stored(request(0))).anomalies, { ...none, misplaced: 2 });
  });

  it('counts a request with only some records visible as partial, whatever its outcome', () => {
    const requests = [request(0, [undecided]), request(1, [failed]), request(2)];
    const read = requests.flatMap((r) => stored(r).slice(0, 1));
    const result = check(requests, read);
    assert.equal(result.anomalies.partial, 3);
    assert.equal(result.anomalies.phantom, 1, 'the failed request shows one record');
    assert.equal(result.anomalies.lost, 1, 'the acknowledged request misses one record');
    assert.equal(result.requests.undecidedPresent + result.requests.undecidedAbsent, 0, 'a partial undecided request is neither');
  });

  it('sorts undecided requests into present and absent, neither an anomaly', () => {
    const requests = [request(0, [undecided]), request(1, [undecided]), request(2, [undecided])];
    const result = check(requests, stored(requests[1]!));
    assert.deepEqual(result.anomalies, none);
    assert.deepEqual(result.requests, { sent: 3, acknowledged: 0, failed: 0, undecided: 3, undecidedPresent: 1, undecidedAbsent: 2 });
  });

  it('an undecided request present twice is still a duplicate', () => {
    const requests = [request(0, [undecided])];
    const read = [...stored(requests[0]!), ...stored(requests[0]!).map((r) => ({ ...r, offset: String(Number(r.offset) + 10) }))];
    const result = check(requests, read);
    assert.deepEqual(result.anomalies, { ...none, duplicated: 2 });
    assert.equal(result.requests.undecidedPresent, 1);
  });

  it('counts a copy with another value or topic as corrupt, and a key no request sent as unexpected', () => {
    const requests = [request(0)];
    const read = stored(requests[0]!);
    read[0] = { ...read[0]!, value: '{"tampered":true}' };
    read.push({ topic: 't', partition: 0, offset: '50', key: 'verify-run1-77-0', value: '{}' });
    read.push({ topic: 'other', partition: 0, offset: '0', key: requests[0]!.records[1]!.key, value: requests[0]!.records[1]!.value });
    const result = check(requests, read);
    assert.deepEqual(result.anomalies, { ...none, corrupt: 2, unexpected: 1, lost: 1, partial: 1 });
  });

  it('with race lanes, one 200 acknowledges; 200s that disagree conflict', () => {
    const base = request(0);
    const ack = base.outcomes[0]!;
    const agreeing = request(0, [ack, undecided]);
    assert.deepEqual(check([agreeing], stored(base)).anomalies, none);

    const elsewhere: LaneOutcome = { kind: 'acknowledged', positions: [{ topic: 't', partition: 0, offset: '7' }, { topic: 't', partition: 0, offset: '8' }], replayed: true };
    const result = check([request(0, [ack, elsewhere])], stored(base));
    assert.deepEqual(result.anomalies, { ...none, conflicting: 1 });
    assert.deepEqual(check([request(0, [ack, failed])], stored(base)).anomalies, { ...none, conflicting: 1 });
  });
});

describe('decide', () => {
  it('acknowledged beats failed beats undecided', () => {
    assert.equal(decide([undecided]).kind, 'undecided');
    assert.equal(decide([undecided, failed]).kind, 'failed');
    assert.equal(decide([failed, request(0).outcomes[0]!]).kind, 'acknowledged');
    assert.equal(decide([]).kind, 'undecided');
  });
});

describe('report', () => {
  const load = (requests: SentRequest[]): LoadResult => ({
    runId: 'run1',
    keyPrefix: 'verify-',
    topics: ['t'],
    gateways: ['http://127.0.0.1:1'],
    mode: 'round-robin',
    startedAt: new Date(0).toISOString(),
    requests,
    stats: {
      durationMs: 1000,
      answers: { '200': requests.length },
      problemCodes: {},
      attempts: requests.length,
      replayed: 0,
      longestGapWithoutAck: { ms: 10, fromMs: 0, toMs: 10 },
      latencyMs: { p50: 1, p99: 2, max: 3 },
      acknowledgedPerSecond: requests.length,
      perGateway: {},
    },
  });

  it('OK and exit 0 without anomalies', () => {
    const requests = [request(0)];
    const report = buildReport({ load: load(requests), check: check(requests, stored(requests[0]!)), transactions: { checked: false, reason: 'not asked for' } });
    assert.equal(report.verdict, 'OK');
    assert.match(verdictLine(report), /^verify: OK /);
    assert.equal(exitCode(report), 0);
  });

  it('FAILED with every count on the line and exit 1 on a duplicate', () => {
    const requests = [request(0)];
    const read = [...stored(requests[0]!), { ...stored(requests[0]!)[0]!, offset: '99' }];
    const report = buildReport({ load: load(requests), check: check(requests, read), transactions: { checked: false, reason: 'not asked for' } });
    assert.equal(report.verdict, 'FAILED');
    assert.match(verdictLine(report), /^verify: FAILED lost=0 duplicated=1 partial=0 phantom=0 misplaced=0 /);
    assert.equal(exitCode(report), 1);
  });

  it('ongoing or hanging transactions and leaking ids fail the run', () => {
    const requests = [request(0)];
    const report = buildReport({
      load: load(requests),
      check: check(requests, stored(requests[0]!)),
      maxTransactionalIds: 8,
      transactions: {
        checked: true,
        prefix: 'txgate-',
        transactionalIds: 10,
        ongoing: [{ transactionalId: 'txgate-a-0', coordinator: 1, producerId: '5', state: 'Ongoing' }],
        brokers: [1],
        hanging: [],
        hangingOnOtherTopics: [],
      },
    });
    assert.equal(report.verdict, 'FAILED');
    assert.equal(report.anomalies.ongoingTransactions, 1);
    assert.equal(report.anomalies.excessTransactionalIds, 2);
    assert.match(verdictLine(report), /ongoing=1 hanging=0 excess-ids=2/);
  });

  it('INCONCLUSIVE and exit 2 when nothing was acknowledged', () => {
    const requests = [request(0, [failed])];
    const report = buildReport({ load: load(requests), check: check(requests, []), transactions: { checked: false, reason: 'not asked for' } });
    assert.equal(report.verdict, 'INCONCLUSIVE');
    assert.match(verdictLine(report), /no request was acknowledged \(first definitive failure: 422 TXGATE_RECORD_REJECTED\)/);
    assert.equal(exitCode(report), 2);
  });
});
