/**
 * Property-based test of group commit (the invariants and their argument: docs/group-commit.md).
 *
 * A GroupCommitter over the real pool and the FakeCluster. fast-check draws a pool size (1-4),
 * batch limits (each tight or loose), and a stream of requests arriving alone or in bursts: 1-3
 * records each, some with a record Kafka refuses (MSG_SIZE_TOO_LARGE, every time), one that times
 * out (_MSG_TIMED_OUT, a deleted topic) or one purged (_PURGE_QUEUE) its first few times; some
 * with a participant that writes a claim in begin and an outcome in finish (like the idempotency
 * key claim) and may reject (ParticipantRejection); some whose caller leaves (AbortSignal) at a
 * random moment or once its records are being sent; commits that time out a few times (retried;
 * sometimes applied at the broker, or past the retry deadline: unknown outcomes); and close() at
 * a random moment or at the end (sometimes twice), with a random deadline. fast-check's scheduler
 * decides when every producer call completes, when each request arrives or leaves, when a
 * participant's check returns, and when time moves: timers are node:test's mock timers
 * (failureSettleMs, close deadlines, retry backoff and deadlines run on virtual time, and the
 * backoff's jitter on a seeded Math.random), so a seed replays exactly.
 *
 * Checked against what the FakeCluster committed, and while it runs:
 * - every request settles, exactly once; the committer ends with nothing pending; close() resolves
 *   (every call of it) only once every accepted request has settled;
 * - a resolved request's records are committed exactly once, all in one committed transaction, at
 *   the positions it was given; every request with data in a committed transaction resolved;
 * - a request rejected with anything but an unknown outcome has none of its records (nor its
 *   participant's) committed; an unknown outcome is all or nothing, and only after a commit fault;
 * - each rejection is explained: RecordRejectedError names a record Kafka refused, AcquireAborted
 *   only after the caller left, PoolClosedError only past close()'s deadline or after close(), a
 *   participant's reason only from a participant that rejected, TransactionAbortedError of a
 *   request without faults of its own only after a timed-out or purged delivery in its attempt;
 * - a caller that left before its batch's transaction began is never committed;
 * - a request is never in two live transactions: before it is sent again, its previous
 *   transaction is aborted;
 * - participants: every begin's claim is sent before any data record of the transaction, no data
 *   is sent in a transaction where a participant rejected, finish runs only once every data record
 *   is acknowledged, committed() exactly once for a resolved request, aborted() only for an
 *   attempt Kafka aborted;
 * - no transaction exceeds maxBatchRequests, nor (with two requests or more) maxBatchRecords or
 *   maxBatchBytes; a request is aborted by purged deliveries alone at most MAX_PURGE_RETRIES + 1
 *   times, by others' timeouts alone at most MAX_TIMEOUT_RETRIES + 1 times; stats agree with the
 *   cluster; the producer port is never misused.
 *
 * A scripted delivery failure that outlives its transaction's abort is purged with it (in the
 * FakeCluster as in librdkafka), so the failure itself would never be seen: faulty deliveries are
 * held here and fail only while their own transaction is open (Run.deliver).
 *
 * TXGATE_PROPERTY_RUNS sets the number of runs (default 400, about 3 s), TXGATE_PROPERTY_SEED and
 * TXGATE_PROPERTY_PATH replay a failure from fast-check's report, TXGATE_PROPERTY_STATS=1 prints
 * what the runs covered, TXGATE_PROPERTY_TIME_LIMIT_MS bounds the whole property (default 60 s).
 */
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import fc from 'fast-check';
import {
  AcquireAbortedError,
  PoolClosedError,
  RecordRejectedError,
  TransactionAbortedError,
  TransactionOutcomeUnknownError,
} from '../../src/errors.js';
import { GroupCommitter } from '../../src/gateway/group-commit/group-commit.js';
import { MAX_PURGE_RETRIES, MAX_TIMEOUT_RETRIES } from '../../src/gateway/group-commit/blame.js';
import { ParticipantRejection, type BatchParticipant } from '../../src/gateway/group-commit/participant.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import { KafkaClientError, type OutgoingRecord, type RecordMetadata } from '../../src/pool/producer-port.js';
import type { Transaction } from '../../src/pool/types.js';
import { FakeCluster, fakePoolOptions, kafkaErrors, type CallRecord, type FakeTransaction, type HeldCall } from '../support/fake-producer.js';

// --- scenarios ------------------------------------------------------------------------------------

type RecordFault = 'none' | 'poison' | 'timeout' | 'purge';

interface RecordPlan {
  topic: 'a' | 'b';
  partition: 0 | 1 | undefined;
  keyed: boolean;
  /** Extra value bytes, so that maxBatchBytes matters. */
  pad: number;
  fault: RecordFault;
  /** 'purge': the first `purges` sends of this record are purged. */
  purges: number;
}

/** accept; reject: its first begin rejects; reject-second: its second begin (a rerun) rejects. */
type ParticipantPlan = 'none' | 'accept' | 'reject' | 'reject-second';

interface RequestPlan {
  records: RecordPlan[];
  participant: ParticipantPlan;
  /** Scheduler steps the participant's begin takes after its claim is acknowledged (a claim check). */
  checkSteps: number;
  /**
   * The caller aborts its signal at a moment the scheduler picks: any time after it arrived, or
   * once its records are being sent (the moment when leaving is no longer honoured for that attempt).
   */
  leaves: 'no' | 'any' | 'running';
  /** Arrives together with the request before it (in the same turn of the event loop). */
  withPrevious: boolean;
}

/** A transaction's commit: its first `times` attempts time out (and with 'timeout-applied' the broker did commit). */
interface CommitFault {
  kind: 'none' | 'timeout' | 'timeout-applied';
  times: number;
}

interface Scenario {
  size: number;
  maxBatchRequests: number;
  maxBatchRecords: number;
  maxBatchBytes: number;
  failureSettleMs: number;
  requests: RequestPlan[];
  /** Consumed one per transaction that commits (its retries follow the same plan). */
  commitFaults: CommitFault[];
  /** Scheduler steps before close() (undefined: once every request settled). */
  closeAfterSteps: number | undefined;
  closeTimeoutMs: number;
  /** close() is called a second time, a few steps later. */
  closeTwice: boolean;
  /** Virtual milliseconds one tick of the clock advances. */
  tickMs: number;
  /** Seeds Math.random (the pool's backoff jitter), so that a run replays exactly. */
  randomSeed: number;
}

const recordArb: fc.Arbitrary<RecordPlan> = fc.record({
  topic: fc.constantFrom('a' as const, 'b' as const),
  partition: fc.constantFrom(0 as const, 1 as const, undefined),
  keyed: fc.boolean(),
  pad: fc.integer({ min: 0, max: 40 }),
  fault: fc.oneof(
    { weight: 30, arbitrary: fc.constant('none' as const) },
    { weight: 1, arbitrary: fc.constant('poison' as const) },
    { weight: 1, arbitrary: fc.constant('timeout' as const) },
    { weight: 1, arbitrary: fc.constant('purge' as const) },
  ),
  purges: fc.integer({ min: 1, max: 5 }),
});

const requestArb: fc.Arbitrary<RequestPlan> = fc.record({
  records: fc.array(recordArb, { minLength: 1, maxLength: 3 }),
  participant: fc.oneof(
    { weight: 6, arbitrary: fc.constant('none' as const) },
    { weight: 3, arbitrary: fc.constant('accept' as const) },
    { weight: 1, arbitrary: fc.constant('reject' as const) },
    { weight: 1, arbitrary: fc.constant('reject-second' as const) },
  ),
  checkSteps: fc.integer({ min: 0, max: 2 }),
  leaves: fc.oneof(
    { weight: 4, arbitrary: fc.constant('no' as const) },
    { weight: 1, arbitrary: fc.constant('any' as const) },
    { weight: 2, arbitrary: fc.constant('running' as const) },
  ),
  withPrevious: fc.oneof({ weight: 1, arbitrary: fc.constant(false) }, { weight: 2, arbitrary: fc.constant(true) }),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  size: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 2 }) }, { weight: 1, arbitrary: fc.integer({ min: 3, max: 4 }) }),
  // Each limit is tight (it decides who shares a transaction) or loose (the others decide).
  maxBatchRequests: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(100)),
  maxBatchRecords: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(1_000)),
  maxBatchBytes: fc.oneof(fc.integer({ min: 20, max: 200 }), fc.constant(100_000)),
  failureSettleMs: fc.integer({ min: 1, max: 20 }),
  requests: fc.array(requestArb, { minLength: 1, maxLength: 14, size: 'max' }),
  commitFaults: fc.array(
    fc.record({
      kind: fc.oneof(
        { weight: 10, arbitrary: fc.constant('none' as const) },
        { weight: 1, arbitrary: fc.constant('timeout' as const) },
        { weight: 1, arbitrary: fc.constant('timeout-applied' as const) },
      ),
      times: fc.integer({ min: 1, max: 12 }),
    }),
    { maxLength: 12 },
  ),
  closeAfterSteps: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 300 })),
  closeTimeoutMs: fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(0, 3, 15) },
    { weight: 2, arbitrary: fc.constant(500) },
  ),
  closeTwice: fc.boolean(),
  tickMs: fc.integer({ min: 1, max: 4 }),
  randomSeed: fc.integer(),
});

// --- records and what they name -----------------------------------------------------------------

const dataValue = (req: number, rec: number, pad: number) => `r${req}.${rec}|${'x'.repeat(pad)}`;
type Named = { kind: 'data'; req: number; rec: number } | { kind: 'claim' | 'outcome'; req: number; attempt: number };

function nameOf(value: Buffer | null | undefined): Named | undefined {
  const v = value?.toString() ?? '';
  let m = /^r(\d+)\.(\d+)\|/.exec(v);
  if (m) return { kind: 'data', req: Number(m[1]), rec: Number(m[2]) };
  m = /^([co])(\d+)#(\d+)$/.exec(v);
  if (m) return { kind: m[1] === 'c' ? 'claim' : 'outcome', req: Number(m[2]), attempt: Number(m[3]) };
  return undefined;
}

const msgTimedOut = () =>
  new KafkaClientError('Local: Message timed out', { code: -192, codeName: '_MSG_TIMED_OUT', fatal: false, retriable: false, txnRequiresAbort: false });

/** mulberry32: a tiny seeded PRNG standing in for Math.random during a run. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- one run ------------------------------------------------------------------------------------

/** A send as the cluster saw it start: which transaction it belongs to and what was injected. */
interface SendLog {
  call: CallRecord;
  txn: number | undefined;
  named: Named | undefined;
  injected: 'poison' | 'timeout' | 'purge' | undefined;
  /** The failure this delivery is to report, if its transaction is still open when it completes. */
  fault: KafkaClientError | undefined;
}

interface RequestState {
  plan: RequestPlan;
  records: OutgoingRecord[];
  launched: boolean;
  launchedAfterClose: boolean;
  /** Makes its caller leave (at a moment the scheduler picks), once. */
  leave?: () => void;
  settled: number;
  /** Virtual time it settled at. */
  settledAt?: number;
  result?: RecordMetadata[];
  error?: unknown;
  /** Highest transaction serial when the caller left (a transaction exists once its begin completed). */
  leftAtTxn?: number;
  participant?: TestParticipant;
}

class TestParticipant implements BatchParticipant {
  begins = 0;
  finishes = 0;
  committedCalls = 0;
  abortedCalls = 0;
  committedWith: RecordMetadata[] | undefined;
  /** The transaction of the latest begin. */
  attemptTxn: number | undefined;
  readonly reason: Error;

  constructor(
    private readonly run: Run,
    private readonly req: number,
    private readonly plan: ParticipantPlan,
    private readonly checkSteps: number,
  ) {
    this.reason = new Error(`participant of r${req} rejects`);
  }

  async begin(tx: Transaction): Promise<void> {
    this.begins++;
    const attempt = this.begins;
    const txn = this.run.openTxnOf(tx.transactionalId);
    if (txn === undefined) this.run.problems.push(`r${this.req}: begin without an open transaction`);
    else if (this.run.sends.some((s) => s.txn === txn.serial && s.named?.kind === 'data')) {
      this.run.problems.push(`r${this.req}: begin ran after data was sent in transaction ${txn.serial}`);
    }
    const previous = this.attemptTxn;
    if (previous !== undefined && this.run.txn(previous)?.state !== 'aborted') {
      this.run.problems.push(`r${this.req}: begins again while its previous transaction ${previous} is ${this.run.txn(previous)?.state}`);
    }
    this.attemptTxn = txn?.serial;
    // Before any await, like the idempotency claim: the transaction's first record on its partition.
    await tx.send({ topic: 'claims', value: Buffer.from(`c${this.req}#${attempt}`) });
    for (let i = 0; i < this.checkSteps; i++) await this.run.s.schedule(Promise.resolve(), `claim check r${this.req}`);
    if (this.plan === 'reject' || (this.plan === 'reject-second' && attempt >= 2)) {
      if (txn) this.run.rejectedIn.add(txn.serial);
      throw new ParticipantRejection(this.reason);
    }
  }

  async finish(tx: Transaction, records: RecordMetadata[]): Promise<void> {
    this.finishes++;
    const txn = this.run.openTxnOf(tx.transactionalId);
    const data = this.run.sends.filter((s) => s.txn === txn?.serial && s.named?.kind === 'data');
    const unacknowledged = data.filter((s) => s.call.status !== 'ok');
    if (unacknowledged.length > 0) {
      this.run.problems.push(`r${this.req}: finish ran with ${unacknowledged.length} data records of transaction ${txn?.serial} not acknowledged`);
    }
    const values = records.map((md) => this.run.stored(md)?.value?.toString());
    const expected = this.run.requests[this.req]!.records.map((r) => r.value?.toString());
    if (JSON.stringify(values) !== JSON.stringify(expected)) {
      this.run.problems.push(`r${this.req}: finish got positions of ${JSON.stringify(values)}, not of its records`);
    }
    await tx.send({ topic: 'claims', value: Buffer.from(`o${this.req}#${this.begins}`) });
  }

  committed(records: RecordMetadata[]): void {
    this.committedCalls++;
    this.committedWith = records;
  }

  aborted(): void {
    this.abortedCalls++;
    const state = this.attemptTxn === undefined ? undefined : this.run.txn(this.attemptTxn)?.state;
    if (state !== 'aborted') this.run.problems.push(`r${this.req}: aborted() called while its transaction ${this.attemptTxn} is ${state}`);
  }
}

class Run {
  readonly problems: string[] = [];
  readonly sends: SendLog[] = [];
  /** Transactions in which a participant rejected. */
  readonly rejectedIn = new Set<number>();
  /** Transactions whose commit got an injected fault. */
  readonly commitFaulted = new Set<number>();
  readonly requests: RequestState[];
  private readonly attempts = new Map<string, number>();
  private nextCommitFault = 0;
  /** Each transaction's commit plan and its commit attempts so far. */
  private readonly commits = new Map<number, { fault: CommitFault; attempts: number }>();

  constructor(
    readonly s: fc.Scheduler,
    readonly sc: Scenario,
    readonly cluster: FakeCluster,
  ) {
    this.requests = sc.requests.map((plan, i) => ({
      plan,
      records: plan.records.map((r, j) => {
        const record: OutgoingRecord = { topic: r.topic, value: Buffer.from(dataValue(i, j, r.pad)) };
        if (r.partition !== undefined) record.partition = r.partition;
        if (r.keyed) record.key = Buffer.from(`k${i}`);
        return record;
      }),
      launched: false,
      launchedAfterClose: false,
      settled: 0,
    }));
  }

  txn(serial: number): FakeTransaction | undefined {
    return this.cluster.transactions.find((t) => t.serial === serial);
  }

  openTxnOf(transactionalId: string): FakeTransaction | undefined {
    return this.cluster.current(transactionalId)?.txn;
  }

  stored(md: RecordMetadata) {
    return this.cluster.records.find((r) => r.topic === md.topic && r.partition === md.partition && r.offset === md.offset);
  }

  /** FakeCluster.faultHook: sees every call start; logs sends, injects the planned faults. */
  onCall(call: CallRecord): KafkaClientError | { error: KafkaClientError; commitApplied: boolean } | undefined {
    const producer = this.cluster.producers(call.transactionalId).find((p) => p.serial === call.producer);
    const txn = producer?.txn?.serial;
    if (call.kind === 'commit' && txn !== undefined) {
      let plan = this.commits.get(txn);
      if (!plan) this.commits.set(txn, (plan = { fault: this.sc.commitFaults[this.nextCommitFault++] ?? { kind: 'none', times: 0 }, attempts: 0 }));
      plan.attempts++;
      if (plan.fault.kind === 'none' || plan.attempts > plan.fault.times) return undefined;
      this.commitFaulted.add(txn);
      return plan.fault.kind === 'timeout' ? kafkaErrors.timedOut('commit') : { error: kafkaErrors.timedOut('commit'), commitApplied: true };
    }
    if (call.kind !== 'send') return undefined;
    const named = nameOf(call.record?.value);
    const log: SendLog = { call, txn, named, injected: undefined, fault: undefined };
    this.sends.push(log);
    if (named?.kind !== 'data') return undefined;
    // A request is never in two live transactions: what it sent before is aborted by now.
    for (const other of this.sends) {
      if (other.named?.kind === 'data' && other.named.req === named.req && other.txn !== txn && other.txn !== undefined) {
        const state = this.txn(other.txn)?.state;
        if (state !== 'aborted') this.problems.push(`r${named.req} sent in transaction ${txn} while its earlier transaction ${other.txn} is ${state}`);
      }
    }
    if (this.requests[named.req]!.plan.leaves === 'running') this.requests[named.req]!.leave?.();
    const plan = this.sc.requests[named.req]!.records[named.rec]!;
    const key = `${named.req}.${named.rec}`;
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    // Delivery failures are not returned here: the fake would apply them to whatever transaction is
    // open when the delivery completes. They are held, and fail only while their own transaction
    // is still open (see deliver()).
    if (plan.fault === 'poison') log.fault = kafkaErrors.msgSizeTooLarge();
    else if (plan.fault === 'timeout') log.fault = msgTimedOut();
    else if (plan.fault === 'purge' && attempt <= plan.purges) log.fault = kafkaErrors.purged();
    if (log.fault) log.injected = plan.fault as 'poison' | 'timeout' | 'purge';
    return undefined;
  }

  /**
   * Completes a held faulty delivery. Its failure reaches Kafka's view of the transaction only
   * while that transaction is open: librdkafka's abort purges outstanding deliveries, so one that
   * comes back after the abort is released and the fake fails it as purged.
   */
  deliver(held: HeldCall): void {
    const log = this.sends.find((x) => x.call === held.call)!;
    const txn = log.txn === undefined ? undefined : this.txn(log.txn);
    if (txn?.state === 'open' && this.openTxnOf(held.call.transactionalId) === txn) held.fail(log.fault!);
    else {
      log.injected = undefined;
      held.release();
    }
  }
}

const MAX_STEPS = 5_000;
const MAX_VIRTUAL_MS = 5_000;

async function runScenario(s: fc.Scheduler, sc: Scenario): Promise<void> {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const realRandom = Math.random;
  Math.random = seededRandom(sc.randomSeed);
  try {
    await runMocked(s, sc);
  } finally {
    Math.random = realRandom;
    mock.timers.reset();
  }
}

async function runMocked(s: fc.Scheduler, sc: Scenario): Promise<void> {
  const cluster = new FakeCluster({ partitions: 2 });
  const pool = new TransactionalProducerPool(
    fakePoolOptions(cluster, {
      size: sc.size,
      maxWaiting: 10_000,
      acquireTimeoutMs: 3_600_000,
      commitTimeoutMs: 100,
      retry: { deadlineMs: 20, initialBackoffMs: 1, maxBackoffMs: 4 },
      replaceBackoffMs: 1,
      healthCheckIntervalMs: 60_000,
    }),
  );
  await pool.start();
  const gc = new GroupCommitter({
    pool,
    maxBatchRequests: sc.maxBatchRequests,
    maxBatchRecords: sc.maxBatchRecords,
    maxBatchBytes: sc.maxBatchBytes,
    failureSettleMs: sc.failureSettleMs,
  });

  const run = new Run(s, sc, cluster);
  const { problems, requests } = run;
  // From here on the scheduler decides when each producer call completes.
  cluster.faultHook = (call) => run.onCall(call);
  const faulty = cluster.hold('send', {
    where: (call) => {
      if (!run.sends.find((x) => x.call === call)?.fault) return false;
      void s.schedule(Promise.resolve(), `fail ${call.record?.value?.toString().split('|')[0]}`).then(() => run.deliver(faulty.held.find((h) => h.call === call)!));
      return true;
    },
  });
  // (A faulty delivery was scheduled by its hold already, and completes as soon as it is let go.)
  cluster.delay = (call) =>
    run.sends.find((x) => x.call === call)?.fault
      ? undefined
      : s.schedule(Promise.resolve(), `${call.kind} ${call.transactionalId}#${call.producer}${call.record ? ` ${call.record.value?.toString().split('|')[0]}` : ''}`);

  let closeCalledAt: number | undefined; // virtual time of the first close()
  const closes: Array<{ resolved: boolean }> = [];
  const launch = (i: number) => {
    const r = requests[i]!;
    r.launched = true;
    r.launchedAfterClose = closeCalledAt !== undefined;
    const ac = r.plan.leaves !== 'no' ? new AbortController() : undefined;
    if (ac) {
      r.leave = () => {
        r.leave = undefined;
        void s.schedule(Promise.resolve(), `leave r${i}`).then(() => {
          r.leftAtTxn = cluster.transactions.at(-1)?.serial ?? 0;
          ac.abort(new Error(`r${i} left`));
        });
      };
      if (r.plan.leaves === 'any') r.leave();
    }
    if (r.plan.participant !== 'none') r.participant = new TestParticipant(run, i, r.plan.participant, r.plan.checkSteps);
    gc.submit({ records: r.records, signal: ac?.signal, participant: r.participant }).then(
      (records) => {
        r.settled++;
        r.result = records;
      },
      (error: unknown) => {
        r.settled++;
        r.settledAt = Date.now();
        r.error = error;
      },
    );
  };
  // Arrivals: each request, or each burst of requests arriving together, at a moment the scheduler picks.
  for (let i = 0; i < requests.length; ) {
    let end = i + 1;
    while (end < requests.length && requests[end]!.plan.withPrevious) end++;
    const burst = [...Array(end - i).keys()].map((k) => i + k);
    void s.schedule(Promise.resolve(), `submit ${burst.map((k) => `r${k}`).join(' ')}`).then(() => burst.forEach(launch));
    i = end;
  }

  const close = () => {
    closeCalledAt ??= Date.now();
    const entry = { resolved: false };
    closes.push(entry);
    gc.close({ timeoutMs: sc.closeTimeoutMs }).then(
      () => {
        entry.resolved = true;
        const pending = gc.stats().pendingRequests;
        if (pending !== 0) problems.push(`close() resolved with ${pending} requests pending`);
      },
      (err: unknown) => {
        entry.resolved = true;
        problems.push(`close() rejected: ${String(err)}`);
      },
    );
  };

  // Time moves only when the scheduler picks the clock, among every other pending step; then by
  // tickMs, a millisecond at a time with the microtasks run in between (as the event loop would).
  let tickPending = false;
  let tickDue = false;
  const scheduleTick = () => {
    tickPending = true;
    void s.schedule(Promise.resolve(), 'tick').then(() => {
      tickPending = false;
      tickDue = true;
    });
  };
  const tick = async () => {
    tickDue = false;
    for (let ms = 0; ms < sc.tickMs; ms++) {
      mock.timers.tick(1);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };

  const allSettled = () => requests.every((r) => r.launched && r.settled === 1);
  let steps = 0;
  let secondCloseAt: number | undefined;
  const drive = async (done: () => boolean, what: string) => {
    while (!done()) {
      if (steps > MAX_STEPS || Date.now() > MAX_VIRTUAL_MS) {
        const unsettled = requests.map((r, i) => (r.settled ? '' : `r${i}${r.launched ? '' : '(not launched)'}`)).filter(Boolean);
        throw new Error(
          `stuck ${what} after ${steps} steps, ${Date.now()} virtual ms: unsettled ${unsettled.join(' ') || 'none'}, closes ${JSON.stringify(closes)}, ` +
            `committer ${JSON.stringify(gc.stats())}, pool busy ${pool.stats().busy} waiting ${pool.stats().waiting}; pending: ` +
            s
              .report()
              .filter((t) => t.status === 'pending')
              .map((t) => t.label)
              .join(', '),
        );
      }
      if (closes.length === 0 && (steps >= (sc.closeAfterSteps ?? Infinity) || allSettled())) {
        close();
        if (sc.closeTwice) secondCloseAt = steps + 3;
      }
      if (closes.length === 1 && secondCloseAt !== undefined && steps >= secondCloseAt) close();
      if (!tickPending) scheduleTick();
      await s.waitNext(1);
      if (tickDue) await tick();
      steps++;
    }
  };
  await drive(() => allSettled() && closes.length === (sc.closeTwice ? 2 : 1) && closes.every((c) => c.resolved), 'draining the committer');

  let poolClosed = false;
  void pool.close({ timeoutMs: 60_000 }).then(() => (poolClosed = true));
  await drive(() => poolClosed, 'closing the pool');

  // --- the invariants ------------------------------------------------------------------------------
  assert.deepEqual(problems, []);
  assert.deepEqual(cluster.violations, [], 'the producer port was never misused');
  // Only a transaction whose commit the pool gave up on (its producer is replaced, and closing
  // stopped the replacement) is left to the coordinator's timeout.
  assert.deepEqual(cluster.openTransactions().filter((t) => !run.commitFaulted.has(t.serial)).map((t) => t.serial), [], 'no transaction left open');
  const stats = gc.stats();
  assert.equal(stats.pendingRequests, 0, 'nothing pending');
  assert.equal(stats.openBatches, 0, 'no batch waiting');

  // Copies of each record, of each request's claims and outcomes, in committed transactions.
  const committedCopies = new Map<string, number>();
  const committedClaims = new Map<number, FakeTransaction[]>();
  const committedOutcomes = new Map<number, FakeTransaction[]>();
  const committed = cluster.transactions.filter((t) => t.state === 'committed');
  for (const t of committed) {
    for (const r of t.records) {
      const named = nameOf(r.value);
      assert.ok(named, `unexpected record ${r.value?.toString()} committed`);
      if (named.kind === 'data') {
        const v = r.value!.toString();
        committedCopies.set(v, (committedCopies.get(v) ?? 0) + 1);
      } else {
        const m = named.kind === 'claim' ? committedClaims : committedOutcomes;
        m.set(named.req, [...(m.get(named.req) ?? []), t]);
      }
    }
  }
  for (const [v, n] of committedCopies) assert.equal(n, 1, `${v} committed ${n} times`);

  /** The transactions request i sent data in, oldest first. */
  const dataTxns = (i: number) => [...new Set(run.sends.filter((x) => x.named?.kind === 'data' && x.named.req === i && x.txn !== undefined).map((x) => x.txn!))];
  const committedOf = (i: number) => requests[i]!.records.filter((r) => committedCopies.has(r.value!.toString()));
  const ownFault = (plan: RequestPlan) => plan.records.some((r) => r.fault !== 'none');

  let resolved = 0;
  const resolvedTxns = new Map<number, number>();
  for (const [i, r] of requests.entries()) {
    assert.equal(r.settled, 1, `r${i} settled once`);
    const p = r.participant;
    if (r.launchedAfterClose) {
      assert.ok(r.error instanceof PoolClosedError, `r${i}, submitted after close(), was refused with PoolClosedError`);
      assert.equal(run.sends.some((x) => x.named?.req === i), false, `r${i}, submitted after close(), sent nothing`);
      continue;
    }
    if (r.result) {
      resolved++;
      // All of its records, exactly once, in one committed transaction, at the positions it was given.
      assert.equal(r.result.length, r.records.length, `r${i}: one position per record`);
      const txns = new Set<number>();
      for (const [j, md] of r.result.entries()) {
        const stored = run.stored(md);
        assert.equal(stored?.value?.toString(), r.records[j]!.value!.toString(), `r${i}: position of record ${j} holds it`);
        assert.equal(stored!.state, 'committed', `r${i}: record ${j} committed`);
        if (r.records[j]!.partition !== undefined) assert.equal(md.partition, r.records[j]!.partition);
        txns.add(stored!.txn);
      }
      assert.equal(txns.size, 1, `r${i}: its records are in one transaction (${[...txns].join(', ')})`);
      const txn = [...txns][0]!;
      resolvedTxns.set(txn, (resolvedTxns.get(txn) ?? 0) + 1);
      // A request Kafka always refuses a record of, or whose participant rejected, never commits.
      assert.ok(!r.plan.records.some((x) => x.fault === 'poison' || x.fault === 'timeout'), `r${i} resolved although a record of it always fails`);
      if (r.leftAtTxn !== undefined) {
        assert.ok(txn <= r.leftAtTxn, `r${i}: its caller left before transaction ${txn} began (last begun: ${r.leftAtTxn}), yet it was committed there`);
      }
      if (p) {
        assert.ok(r.plan.participant === 'accept' || (r.plan.participant === 'reject-second' && p.begins === 1), `r${i}: committed although its participant rejected`);
        assert.equal(p.committedCalls, 1, `r${i}: committed() once`);
        assert.deepEqual(p.committedWith, r.result, `r${i}: committed() with its positions`);
        assert.deepEqual(committedClaims.get(i)?.map((t) => t.serial), [txn], `r${i}: one claim committed, with its data`);
        assert.deepEqual(committedOutcomes.get(i)?.map((t) => t.serial), [txn], `r${i}: one outcome committed, with its data`);
      }
      continue;
    }

    const err = r.error;
    if (p) assert.equal(p.committedCalls, 0, `r${i}: committed() on a request that failed`);
    if (err instanceof TransactionOutcomeUnknownError) {
      // All or nothing, and only when a commit of its failed.
      const seen = committedOf(i);
      assert.ok(seen.length === 0 || seen.length === r.records.length, `r${i}: part of an unknown outcome is committed`);
      assert.ok(dataTxns(i).some((t) => run.commitFaulted.has(t)), `r${i}: unknown outcome without a commit fault`);
      continue;
    }
    assert.deepEqual(committedOf(i).map((x) => x.value!.toString()), [], `r${i} failed (${String(err)}) but has committed records`);
    assert.equal(committedClaims.has(i) || committedOutcomes.has(i), false, `r${i} failed but its participant's records are committed`);
    if (err instanceof RecordRejectedError) {
      assert.equal(r.plan.records[err.recordIndex]?.fault, 'poison', `r${i}: blamed for record ${err.recordIndex}, which Kafka accepts`);
      assert.equal(err.kafkaCode, 10);
    } else if (err instanceof AcquireAbortedError) {
      assert.notEqual(r.leftAtTxn, undefined, `r${i}: AcquireAbortedError but its caller never left`);
    } else if (err instanceof PoolClosedError) {
      assert.ok(closeCalledAt !== undefined && r.settledAt! >= closeCalledAt + sc.closeTimeoutMs, `r${i}: PoolClosedError before close()'s deadline`);
    } else if (p && err === p.reason) {
      assert.ok(r.plan.participant === 'reject' || (r.plan.participant === 'reject-second' && p.begins >= 2), `r${i}: failed with its participant's reason, which did not reject`);
    } else if (err instanceof TransactionAbortedError) {
      if (!ownFault(r.plan)) {
        const last = dataTxns(i).at(-1);
        const faulted = run.sends.some((x) => x.txn === last && (x.injected === 'timeout' || x.injected === 'purge'));
        assert.ok(last !== undefined && faulted, `r${i}: aborted (${err.message}) although nothing of its last attempt (transaction ${last}) timed out or was purged`);
      }
    } else {
      assert.fail(`r${i}: failed with an unexpected error: ${String(err)}`);
    }
  }

  // Transactions: whoever has data in a committed one resolved there; the batch limits hold.
  for (const t of cluster.transactions) {
    const data = run.sends.filter((x) => x.txn === t.serial && x.named?.kind === 'data');
    const reqs = [...new Set(data.map((x) => x.named!.req))];
    const records = data.length;
    const bytes = data.reduce((n, x) => n + (x.call.record!.value?.length ?? 0) + (x.call.record!.key?.length ?? 0), 0);
    assert.ok(reqs.length <= sc.maxBatchRequests, `transaction ${t.serial}: ${reqs.length} requests > maxBatchRequests ${sc.maxBatchRequests}`);
    if (reqs.length > 1) {
      assert.ok(records <= sc.maxBatchRecords, `transaction ${t.serial}: ${records} records > maxBatchRecords ${sc.maxBatchRecords}`);
      assert.ok(bytes <= sc.maxBatchBytes, `transaction ${t.serial}: ${bytes} bytes > maxBatchBytes ${sc.maxBatchBytes}`);
    }
    const perValue = new Set(data.map((x) => x.call.record!.value!.toString()));
    assert.equal(perValue.size, data.length, `transaction ${t.serial}: a record sent twice`);
    // Participants: claims before any data; no data after a rejection.
    const claims = run.sends.filter((x) => x.txn === t.serial && x.named?.kind === 'claim');
    const outcomes = run.sends.filter((x) => x.txn === t.serial && x.named?.kind === 'outcome');
    const firstData = Math.min(...data.map((x) => x.call.seq));
    for (const c of claims) assert.ok(c.call.seq < firstData, `transaction ${t.serial}: a claim sent after data`);
    const lastData = Math.max(...data.map((x) => x.call.seq));
    for (const o of outcomes) assert.ok(o.call.seq > lastData, `transaction ${t.serial}: an outcome sent before data`);
    if (run.rejectedIn.has(t.serial)) {
      assert.equal(data.length, 0, `transaction ${t.serial}: data sent although a participant rejected`);
      assert.notEqual(t.state, 'committed');
    }
    if (t.state === 'committed' && !run.commitFaulted.has(t.serial)) {
      for (const q of reqs) {
        assert.ok(requests[q]!.result, `r${q} has data in committed transaction ${t.serial} but did not resolve (${String(requests[q]!.error)})`);
      }
    }
  }
  if (process.env.TXGATE_PROPERTY_STATS) {
    const tally = (what: string) => (coverage[what] = (coverage[what] ?? 0) + 1);
    tally('runs');
    for (const r of requests) tally(r.result ? 'resolved' : (r.error as Error).name + (r.error instanceof Error && r.error.message.includes('rejects') ? '' : ''));
    for (const n of resolvedTxns.values()) tally(n > 1 ? 'batched commits' : 'solo commits');
    for (const t of cluster.transactions) {
      const reqs = new Set(run.sends.filter((x) => x.txn === t.serial && x.named?.kind === 'data').map((x) => x.named!.req));
      if (reqs.size > 1) tally(`batched ${t.state}`);
    }
    for (const t of cluster.transactions) if (t.state === 'aborted') tally('aborted transactions');
    tally(`steps ~${10 ** Math.ceil(Math.log10(steps + 1))}`);
    coverage['max steps'] = Math.max(coverage['max steps'] ?? 0, steps);
    coverage['max virtual ms'] = Math.max(coverage['max virtual ms'] ?? 0, Date.now());
  }
  // Retries are bounded: a request is aborted by purged deliveries alone at most MAX_PURGE_RETRIES
  // times before it fails, and by others' timed-out deliveries alone at most MAX_TIMEOUT_RETRIES.
  for (const i of requests.keys()) {
    let purged = 0;
    let othersTimedOut = 0;
    for (const t of dataTxns(i)) {
      const injected = run.sends.filter((x) => x.txn === t && x.injected);
      if (run.txn(t)?.state !== 'aborted' || injected.length === 0) continue;
      if (injected.every((x) => x.injected === 'purge')) purged++;
      if (injected.every((x) => x.injected === 'timeout' && x.named?.req !== i)) othersTimedOut++;
    }
    assert.ok(purged <= MAX_PURGE_RETRIES + 1, `r${i}: aborted by purged deliveries ${purged} times`);
    assert.ok(othersTimedOut <= MAX_TIMEOUT_RETRIES + 1, `r${i}: aborted by others' timed-out deliveries ${othersTimedOut} times`);
  }
  assert.equal(stats.requests, resolved, 'stats.requests');
  assert.equal(stats.transactions, resolvedTxns.size, 'stats.transactions');
  assert.equal(stats.batchedRequests, [...resolvedTxns.values()].filter((n) => n > 1).reduce((a, b) => a + b, 0), 'stats.batchedRequests');
}

const coverage: Record<string, number> = {};
const runs = Number(process.env.TXGATE_PROPERTY_RUNS ?? 400);
/** Replays a failure: TXGATE_PROPERTY_SEED=<seed> TXGATE_PROPERTY_PATH=<path> from fast-check's report. */
const replay = process.env.TXGATE_PROPERTY_SEED
  ? { seed: Number(process.env.TXGATE_PROPERTY_SEED), path: process.env.TXGATE_PROPERTY_PATH, endOnFailure: true }
  : {};
function explainReplay(error: unknown): never {
  if (process.env.TXGATE_PROPERTY_SEED) console.error(error);
  throw error;
}
// Shrinking a failure can take long; past this it reports the smallest counterexample found so far.
const limits = { interruptAfterTimeLimit: Number(process.env.TXGATE_PROPERTY_TIME_LIMIT_MS ?? 60_000), markInterruptAsFailure: true };

describe('group commit under random interleavings (fast-check)', () => {
  it('keeps its invariants under random batches, refused, timed-out and purged records, participants, callers leaving and close()', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), scenarioArb, (s, sc) => runScenario(s, sc).catch(explainReplay)),
      { numRuns: runs, ...limits, ...replay },
    );
    if (process.env.TXGATE_PROPERTY_STATS) console.log(coverage);
  });
});
