// The idempotency claim protocol, checked against a model of Kafka: two or three gateway
// instances race on one key through random interleavings of their writes, their two consumers
// (read_committed and read_uncommitted, each one record per step), aborts, crashes and the
// coordinator's transaction timeout. The invariant (docs/idempotency.md): at most one transaction
// that carries a claim for the key commits.
//
// Each instance runs the real decision (decideKey) and the real view (IdempotencyView), in the
// order KeyClaim runs them: decide; claim first in the transaction; wait until the
// read_uncommitted cursor passes the claim; check conflicts(); write the outcome; commit and
// remember it, or abort and markAborted() its records, then decide again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decideKey } from '../../src/gateway/idempotency/decision.js';
import { decodeRecord, encodeClaim, encodeOutcome, type CommittedOutcome } from '../../src/gateway/idempotency/record-format.js';
import { IdempotencyView } from '../../src/gateway/idempotency/view.js';
import { MemoryConsumer, MemoryPartitionLog } from '../support/memory-log.js';

const KEY = 'order-17';
const OTHER_KEY = 'order-18';
const FINGERPRINT = 'f';
const NOW = '2026-11-30T00:00:00.000Z';

/** The view before committed claims were tracked: passing a claim was taken as knowing its outcome. */
class LegacyView extends IdempotencyView {
  override applyCommitted(partition: number, offset: number, key: string | undefined, value: Buffer | null | undefined): void {
    super.applyCommitted(partition, offset, decodeRecord(value)?.kind === 'claim' ? undefined : key, value);
  }
}

type ViewFactory = () => IdempotencyView;

type Phase = 'decide' | 'claim' | 'verify' | 'finish' | 'commit' | 'replayed' | 'committed' | 'crashed';

/** One gateway instance with one client request for KEY (a retry after a crash is a new instance). */
class Instance {
  readonly view: IdempotencyView;
  readonly consumers: MemoryConsumer[];
  phase: Phase = 'decide';
  private horizon = 0;
  private claimOffset = 0;
  private outcome: { value: CommittedOutcome; offset: number } | undefined;
  private txn: number | undefined;
  private readonly own = new Set<number>();
  private attempt: number[] = [];

  constructor(
    readonly name: string,
    private readonly log: MemoryPartitionLog,
    readonly makeView: ViewFactory,
  ) {
    const view = makeView();
    this.view = view;
    this.consumers = [
      new MemoryConsumer(log, 'read_uncommitted', {
        record: (offset, key) => view.applyUncommitted(0, offset, key),
        endOfPartition: (offset) => view.advance('uncommitted', 0, offset),
      }),
      new MemoryConsumer(log, 'read_committed', {
        record: (offset, key, value) => view.applyCommitted(0, offset, key, value),
        endOfPartition: (offset) => view.advance('committed', 0, offset),
      }),
    ];
  }

  /** The open transaction of this request's current attempt. */
  get transaction(): number | undefined {
    return this.txn;
  }

  get done(): boolean {
    return this.phase === 'replayed' || this.phase === 'committed' || this.phase === 'crashed';
  }

  /** The request's next step, if it can take one now. */
  step(): (() => void) | undefined {
    switch (this.phase) {
      case 'decide': {
        const d = decideKey(this.view, KEY, FINGERPRINT, 0);
        if (d.kind === 'wait') return undefined;
        return () => {
          if (d.kind === 'replay') this.phase = 'replayed';
          else {
            this.horizon = d.horizon;
            this.phase = 'claim';
          }
        };
      }
      case 'claim':
        return () => {
          this.txn = this.log.begin();
          this.attempt = [];
          this.claimOffset = this.write(encodeClaim({ pending: true, fingerprint: FINGERPRINT, claimedAt: NOW }));
          this.phase = 'verify';
        };
      case 'verify':
        if (this.view.position('uncommitted', 0) < this.claimOffset + 1) return undefined;
        return () => {
          if (this.view.conflicts(0, KEY, this.horizon, this.claimOffset, this.own)) this.abort();
          else this.phase = 'finish';
        };
      case 'finish':
        return () => {
          const value: CommittedOutcome = { fingerprint: FINGERPRINT, records: [{ topic: 'data', partition: 0, offset: '0' }], committedAt: NOW };
          this.outcome = { value, offset: this.write(encodeOutcome(value)) };
          this.phase = 'commit';
        };
      case 'commit':
        return () => {
          this.log.commit(this.txn!);
          this.view.remember(KEY, this.outcome!.value, this.outcome!.offset);
          this.phase = 'committed';
        };
      default:
        return undefined;
    }
  }

  /** A batch-mate's claim for another key, written before ours: the transaction starts earlier. */
  batchMate(): (() => void) | undefined {
    if (this.phase !== 'claim') return undefined;
    return () => {
      this.txn = this.log.begin();
      this.attempt = [];
      this.write(encodeClaim({ pending: true, fingerprint: 'g', claimedAt: NOW }), OTHER_KEY);
      const offset = this.write(encodeClaim({ pending: true, fingerprint: FINGERPRINT, claimedAt: NOW }));
      this.claimOffset = offset;
      this.phase = 'verify';
    };
  }

  /** The transaction fails (a broker error, a timeout): aborted, and the request decides again. */
  failure(): (() => void) | undefined {
    if (this.phase !== 'verify' && this.phase !== 'finish' && this.phase !== 'commit') return undefined;
    return () => this.abort();
  }

  /** kill -9: the transaction stays open until the coordinator times it out. */
  crash(): (() => void) | undefined {
    if (this.done) return undefined;
    return () => {
      this.phase = 'crashed';
    };
  }

  private write(value: Buffer, key = KEY): number {
    const offset = this.log.append(this.txn!, key, value);
    if (key === KEY) this.own.add(offset);
    this.attempt.push(offset);
    return offset;
  }

  private abort(): void {
    this.log.abort(this.txn!);
    this.view.markAborted(0, this.attempt);
    this.txn = undefined;
    this.phase = 'decide';
  }
}

interface Run {
  log: MemoryPartitionLog;
  instances: Instance[];
  crashes: number;
}

/** What can happen next: progress (writers' steps, consumers' fetches), and the rare events. */
function enabled(run: Run, maxCrashes: number): { actions: Array<() => void>; rare: Array<() => void>; timeouts: Array<() => void> } {
  const actions: Array<() => void> = [];
  const rare: Array<() => void> = [];
  const timeouts: Array<() => void> = [];
  for (const inst of run.instances) {
    if (inst.phase === 'crashed') continue;
    for (const c of inst.consumers) {
      if (c.canFetch()) actions.push(() => c.fetch());
      if (c.canReportEnd()) actions.push(() => c.reportEnd());
    }
    for (const a of [inst.step(), inst.batchMate()]) if (a) actions.push(a);
    const failure = inst.failure();
    if (failure) rare.push(failure);
    const crash = run.crashes < maxCrashes ? inst.crash() : undefined;
    if (crash) {
      rare.push(() => {
        crash();
        run.crashes++;
        // The client retries at an instance that starts afresh (it reads the topic from the start).
        run.instances.push(new Instance(`${inst.name}'`, run.log, inst.makeView));
      });
    }
  }
  // The coordinator aborts a crashed instance's transaction when it times out.
  for (const txn of run.log.openTransactions()) {
    if (!run.instances.some((i) => i.phase !== 'crashed' && i.transaction === txn)) timeouts.push(() => run.log.abort(txn));
  }
  rare.push(...timeouts);
  return { actions, rare, timeouts };
}

/**
 * Plays `choices` as a schedule: each picks one of the actions enabled at that point. Failures,
 * crashes and timeouts are picked one time in 8 at most: were they as common as progress, few
 * schedules would get far enough to race.
 */
function play(writers: number, choices: number[], makeView: ViewFactory, maxCrashes = 1): Run {
  const log = new MemoryPartitionLog();
  const run: Run = { log, instances: Array.from({ length: writers }, (_, i) => new Instance(`g${i}`, log, makeView)), crashes: 0 };
  for (const choice of choices) {
    const { actions, rare } = enabled(run, maxCrashes);
    const pool = rare.length > 0 && (choice % 8 === 0 || actions.length === 0) ? rare : actions;
    if (pool.length === 0) break;
    pool[Math.floor(choice / 8) % pool.length]!();
  }
  return run;
}

/** Then every client keeps retrying, nothing fails any more, and every action gets its turn. */
function settle(run: Run): void {
  for (let i = 0; i < 10_000; i++) {
    // Of the rare events only the coordinator's timeouts: they end what a crash left open.
    const { actions, timeouts } = enabled(run, 0);
    const all = [...actions, ...timeouts];
    if (all.length === 0) return;
    all[i % all.length]!();
  }
  throw new Error('the model did not settle in 10,000 steps');
}

/** Committed transactions that carry a claim for KEY. */
function committedClaims(log: MemoryPartitionLog): number {
  const txns = new Set<number>();
  for (const r of log.records) {
    if (r.key === KEY && r.txn !== undefined && log.committedVisible(r.offset) && decodeRecord(r.value)?.kind === 'claim') txns.add(r.txn);
  }
  return txns.size;
}

const schedule = fc.array(fc.nat({ max: 1_000 }), { minLength: 20, maxLength: 250 });
/** Safety: at most one committed claim, at every point of any schedule (commits are never undone, so at the end). */
const safety = (makeView: ViewFactory) =>
  fc.property(fc.integer({ min: 2, max: 3 }), schedule, (writers, choices) => committedClaims(play(writers, choices, makeView).log) <= 1);

describe('idempotency claim protocol (model of Kafka: offsets, open transactions, aborts, LSO, both isolation levels)', () => {
  it('commits at most one claim for a key, whatever the interleaving of 2 or 3 writers, aborts and a crash', () => {
    fc.assert(safety(() => new IdempotencyView(1)), { numRuns: 10_000 });
  });

  it('and every retrying client then gets its answer: exactly one commit, every other request replays it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 3 }), schedule, (writers, choices) => {
        const run = play(writers, choices, () => new IdempotencyView(1));
        settle(run);
        const live = run.instances.filter((i) => i.phase !== 'crashed');
        assert.ok(live.every((i) => i.phase === 'committed' || i.phase === 'replayed'), live.map((i) => `${i.name}:${i.phase}`).join(' '));
        assert.equal(committedClaims(run.log), 1);
        assert.ok(live.filter((i) => i.phase === 'committed').length <= 1);
      }),
      { numRuns: 2_000 },
    );
  });

  it('and so with no outcome held in full (keys known by their index entry, records summarized without parsing)', () => {
    fc.assert(safety(() => new IdempotencyView(1, {}, { recentOutcomes: { maxOutcomes: 0 } })), { numRuns: 5_000 });
  });

  it('the model finds the double commit of the protocol that took a passed claim as resolved', () => {
    const result = fc.check(safety(() => new LegacyView(1)), { numRuns: 20_000, seed: 17 });
    assert.equal(result.failed, true, 'the model must be able to find the known bug');
  });

  it('regression: a claim whose outcome lies beyond our own open transaction is not resolved by passing it', () => {
    // B decides and claims; A decided before B's claim was visible, and claims after it; B
    // writes its outcome and commits; A's read_committed consumer passes B's claim (up to A's own
    // transaction, the LSO) but cannot reach B's outcome; A's read_uncommitted consumer is just
    // past A's claim.
    for (const [makeView, expected] of [
      [() => new LegacyView(1), 2],
      [() => new IdempotencyView(1), 1],
    ] as const) {
      const log = new MemoryPartitionLog();
      const a = new Instance('a', log, makeView);
      const b = new Instance('b', log, makeView);
      const [aUncommitted, aCommitted] = a.consumers as [MemoryConsumer, MemoryConsumer];
      const run = (step: (() => void) | undefined) => {
        assert.ok(step, 'step enabled');
        step();
      };
      run(a.step()); // A decides: the key is unused up to offset 0
      run(b.step()); // B decides the same
      run(b.step()); // B claims at 0
      run(a.step()); // A claims at 1
      run(() => aUncommitted.fetch()); // A reads B's claim (0) ...
      run(() => aUncommitted.fetch()); // ... and its own (1)
      // B's claim check, once its read_uncommitted cursor is past its claim: A's claim is after it
      const [bUncommitted] = b.consumers as [MemoryConsumer];
      run(() => bUncommitted.fetch());
      run(b.step()); // B verifies: no conflict
      run(b.step()); // B writes its outcome at 2
      run(b.step()); // B commits (marker at 3)
      run(() => aCommitted.fetch()); // A's read_committed consumer passes B's claim, stops at A's own transaction (LSO 1)
      run(a.step()); // A verifies
      if (a.phase === 'finish') {
        run(a.step());
        run(a.step());
      }
      assert.equal(committedClaims(log), expected);
    }
  });
});
