/**
 * The slot state machine (src/pool/slot.ts): the table of legal transitions itself, and, under
 * the operations the pool property test throws at a pool (random schedules, faults, cancellations,
 * hanging work, close at any moment) plus idle renewal and failed starts, that the pool's stats,
 * its idle list and its slots' states never disagree and that no illegal transition is attempted.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TxGateError } from '../../src/errors.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import { isLegalTransition, SLOT_TRANSITIONS, SlotInvariantError, SlotTable } from '../../src/pool/slot.js';
import type { SlotState } from '../../src/pool/types.js';
import { deferred, FakeCluster, fakePoolOptions, kafkaErrors, rec, type CallRecord, type FakeProducer } from '../support/fake-producer.js';

const STATES: readonly SlotState[] = ['starting', 'idle', 'busy', 'replacing', 'closed'];
const ALL_PAIRS = STATES.flatMap((from) => STATES.map((to) => [from, to] as const));
const arrow = (from: SlotState, to: SlotState) => `${from} -> ${to}`;

/** The shortest path of legal moves from `from` to every state reachable from it. */
function pathsFrom(from: SlotState): Map<SlotState, SlotState[]> {
  const paths = new Map<SlotState, SlotState[]>([[from, []]]);
  const queue: SlotState[] = [from];
  for (let state = queue.shift(); state !== undefined; state = queue.shift()) {
    for (const next of SLOT_TRANSITIONS[state]) {
      if (paths.has(next)) continue;
      paths.set(next, [...paths.get(state)!, next]);
      queue.push(next);
    }
  }
  return paths;
}

function pathTo(target: SlotState): SlotState[] {
  const path = pathsFrom('starting').get(target);
  assert.ok(path, `${target} is reachable from starting`);
  return path;
}

/** A table of two slots whose slot 0 has been walked to `state`. */
function tableWithSlotIn(state: SlotState): SlotTable {
  const table = new SlotTable(['tx-0', 'tx-1']);
  for (const step of pathTo(state)) table.move(table.all[0]!, step);
  assert.equal(table.all[0]!.state, state);
  return table;
}

function countsOf(table: SlotTable): Record<SlotState, number> {
  return Object.fromEntries(STATES.map((s) => [s, table.count(s)])) as Record<SlotState, number>;
}

describe('slot state machine: the transition table', () => {
  it('is exactly the lifecycle the pool implements', () => {
    const legal = ALL_PAIRS.filter(([from, to]) => isLegalTransition(from, to)).map(([from, to]) => arrow(from, to));
    assert.deepEqual(legal, [
      'starting -> idle',
      'starting -> closed',
      'idle -> busy',
      'idle -> replacing',
      'idle -> closed',
      'busy -> idle',
      'busy -> replacing',
      'replacing -> idle',
      'replacing -> closed',
    ]);
  });

  it('reaches every state from starting, can close from every state, and closed is final', () => {
    assert.deepEqual([...pathsFrom('starting').keys()].sort(), [...STATES].sort());
    for (const state of STATES) {
      const table = tableWithSlotIn(state);
      // No slot can get stuck: from wherever it is, legal moves lead to closed.
      for (const step of pathsFrom(state).get('closed')!) table.move(table.all[0]!, step);
      assert.equal(table.all[0]!.state, 'closed');
    }
    assert.deepEqual(SLOT_TRANSITIONS.closed, []);
  });

  for (const [from, to] of ALL_PAIRS) {
    if (isLegalTransition(from, to)) {
      it(`accepts ${arrow(from, to)} and keeps the idle list and counts in step`, () => {
        const table = tableWithSlotIn(from);
        const before = countsOf(table);
        table.move(table.all[0]!, to);
        assert.equal(table.all[0]!.state, to);
        assert.deepEqual(countsOf(table), { ...before, [from]: before[from] - 1, [to]: before[to] + 1 });
        assert.deepEqual(table.audit(), []);
        assert.equal(table.idle().includes(table.all[0]!), to === 'idle');
      });
    } else {
      it(`refuses ${arrow(from, to)} with an invariant error, changing nothing`, () => {
        const table = tableWithSlotIn(from);
        const before = countsOf(table);
        const idleBefore = table.idle();
        assert.throws(
          () => table.move(table.all[0]!, to),
          (err: unknown) =>
            err instanceof SlotInvariantError &&
            err instanceof TxGateError &&
            err.code === 'TXGATE_INTERNAL_INVARIANT' &&
            err.slot === 0 &&
            err.from === from &&
            err.to === to,
        );
        assert.equal(table.all[0]!.state, from);
        assert.deepEqual(countsOf(table), before);
        assert.deepEqual(table.idle(), idleBefore);
        assert.deepEqual(table.audit(), []);
      });
    }
  }

  it('lends the slot idle longest first, and a slot leaving idle leaves the idle list', () => {
    const table = new SlotTable(['a', 'b', 'c']);
    const [a, b, c] = table.all;
    assert.ok(a && b && c);
    for (const slot of table.all) table.move(slot, 'idle');
    assert.equal(table.takeIdle(), a);
    table.move(a, 'idle');
    assert.deepEqual(table.idle(), [b, c, a]);
    table.move(c, 'replacing');
    assert.deepEqual(table.idle(), [b, a]);
    assert.equal(table.takeIdle(), b);
    assert.equal(table.takeIdle(), a);
    assert.equal(table.takeIdle(), undefined);
    assert.deepEqual(countsOf(table), { starting: 0, idle: 0, busy: 2, replacing: 1, closed: 0 });
    assert.deepEqual(table.audit(), []);
  });

  it('only slot.ts assigns a slot state: every other pool module goes through move()', () => {
    const dir = new URL('../../src/pool/', import.meta.url);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'slot.ts')) {
      const source = readFileSync(new URL(file, dir), 'utf8');
      assert.doesNotMatch(source, /\.state\s*=[^=]/, `${file} assigns a state itself`);
    }
  });
});

// --- under the pool property test's operations -----------------------------------------------

type FaultName = 'none' | 'timeout' | 'timeout-applied' | 'concurrent' | 'abortable' | 'fenced' | 'fatal' | 'too-large' | 'fence-id';
type Fault = ReturnType<NonNullable<FakeCluster['faultHook']>>;

/** The property test's faults, each as the call it strikes sees it. */
const FAULTS: Record<FaultName, (call: CallRecord, cluster: FakeCluster) => Fault> = {
  none: () => undefined,
  timeout: (call) => kafkaErrors.timedOut(call.kind),
  'timeout-applied': (call) => (call.kind === 'commit' ? { error: kafkaErrors.timedOut('commit'), commitApplied: true } : kafkaErrors.timedOut(call.kind)),
  concurrent: (call) => (['begin', 'commit'].includes(call.kind) ? kafkaErrors.concurrentTransactions() : undefined),
  abortable: (call) => (['init', 'abort'].includes(call.kind) ? undefined : kafkaErrors.abortable()),
  fenced: () => kafkaErrors.fenced(),
  fatal: () => kafkaErrors.fatal(),
  'too-large': (call) => (call.kind === 'send' ? kafkaErrors.msgSizeTooLarge() : undefined),
  'fence-id': (call, cluster) => void (call.kind === 'init' || cluster.fence(call.transactionalId)),
};

const planArb = fc
  .record({
    size: fc.integer({ min: 1, max: 3 }),
    maxWaiting: fc.integer({ min: 0, max: 6 }),
    // How the pool starts: normally, with a producer failing to initialise, or closed meanwhile.
    start: fc.oneof({ weight: 12, arbitrary: fc.constant('ok' as const) }, { weight: 1, arbitrary: fc.constantFrom('init-fails' as const, 'closed-before' as const, 'closed-during' as const) }),
    // Idle slots are renewed this long after their last use (undefined: never, within the test).
    renewAfterMs: fc.option(fc.constantFrom(0, 2), { nil: undefined, freq: 2 }),
    callers: fc.array(
      fc.record({
        sends: fc.integer({ min: 0, max: 3 }),
        offsets: fc.boolean(),
        steps: fc.integer({ min: 0, max: 3 }),
        ending: fc.constantFrom('return' as const, 'return' as const, 'return' as const, 'throw' as const, 'hang' as const),
        cancel: fc.constantFrom('none' as const, 'none' as const, 'none' as const, 'signal' as const, 'timeout' as const),
      }),
      { minLength: 1, maxLength: 8 },
    ),
    faults: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constant('none' as const) }, fc.constantFrom(...(Object.keys(FAULTS) as FaultName[]))), { maxLength: 40 }),
    closeAfterSteps: fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }),
    closeTimeoutMs: fc.constantFrom(1, 5, 20, 60_000),
  })
  // Work that hangs until close() gives up on it only makes sense with a short close deadline.
  .map((plan) => ({ ...plan, callers: plan.callers.map((c) => (c.ending === 'hang' && plan.closeTimeoutMs > 20 ? { ...c, ending: 'return' as const } : c)) }));

type Plan = typeof planArb extends fc.Arbitrary<infer P> ? P : never;

/** The property test's timings: quick retries and replacements, callers that wait long. */
const PROPERTY_TIMINGS = {
  acquireTimeoutMs: 60_000,
  retry: { deadlineMs: 20, initialBackoffMs: 1, maxBackoffMs: 2 },
  replaceBackoffMs: 1,
  healthCheckIntervalMs: 60_000,
};

/** Every transition seen across all runs, to show the table holds no transition the pool never makes. */
const seen = new Set<string>();

async function checkStatesAgree(s: fc.Scheduler, plan: Plan): Promise<void> {
  const cluster = new FakeCluster({ partitions: 2 });
  const renewal = plan.renewAfterMs === undefined ? {} : { healthCheckIntervalMs: 1, refreshIdleAfterMs: plan.renewAfterMs };
  const { size, maxWaiting } = plan;
  const pool = new TransactionalProducerPool(fakePoolOptions(cluster, { ...PROPERTY_TIMINGS, ...renewal, size, maxWaiting }));
  const table: SlotTable = pool['ctx'].slots;
  const problems: string[] = [];
  const move = table.move.bind(table);
  table.move = (slot, to) => {
    const from = slot.state;
    try {
      move(slot, to);
      seen.add(arrow(from, to));
    } catch (error) {
      problems.push(`slot ${slot.index}: ${String(error)}`);
      throw error;
    }
  };
  const check = (when: string) => {
    const stats = pool.stats();
    const byState = (state: SlotState) => stats.slots.filter((slot) => slot.state === state).length;
    for (const state of ['idle', 'busy', 'replacing'] as const) {
      if (stats[state] !== byState(state)) problems.push(`${when}: stats.${state} = ${stats[state]} but ${byState(state)} slots are ${state}`);
    }
    if (STATES.reduce((n, state) => n + byState(state), 0) !== plan.size) problems.push(`${when}: states do not add up to the size`);
    problems.push(...table.audit().map((p) => `${when}: ${p}`));
    if (!stats.closed && stats.waiting > 0 && stats.idle > 0) problems.push(`${when}: ${stats.waiting} callers wait while ${stats.idle} slots are idle`);
    for (const slot of table.all) {
      const live = slot.producer !== undefined && !(slot.producer as FakeProducer).closed;
      if (slot.state === 'closed' && slot.producer !== undefined) problems.push(`${when}: closed slot ${slot.index} still holds a producer`);
      if (!stats.closed && (slot.state === 'idle' || slot.state === 'busy') && !live) problems.push(`${when}: ${slot.state} slot ${slot.index} has no open producer`);
    }
  };

  if (plan.start === 'init-fails') cluster.failNextCreate(() => new Error('no producer for you'), { id: `tx-i1-${plan.size - 1}` });
  if (plan.start === 'closed-before') await pool.close();
  const starting = pool.start();
  if (plan.start === 'closed-during') await pool.close();
  const started = await starting.then(
    () => true,
    () => false,
  );
  check('after start');
  assert.equal(started, plan.start === 'ok', `start() with ${plan.start}`);
  if (!started) {
    await pool.close();
    check('after close');
    assert.deepEqual(pool.stats().slots.map((slot) => slot.state), Array(plan.size).fill('closed'));
    assert.deepEqual(problems, []);
    return;
  }

  let nextFault = 0;
  cluster.faultHook = (call) => FAULTS[plan.faults[nextFault++] ?? 'none'](call, cluster);
  cluster.delay = (call) => s.schedule(Promise.resolve(), `${call.kind} ${call.transactionalId}#${call.producer}`);
  const hangRelease = deferred();
  const settled: boolean[] = plan.callers.map(() => false);
  plan.callers.forEach((caller, i) =>
    void s.schedule(Promise.resolve(), `launch c${i}`).then(() => {
      const giveUp = new AbortController();
      if (caller.cancel === 'signal') void s.schedule(Promise.resolve(), `cancel c${i}`).then(() => giveUp.abort());
      const timeout = caller.cancel === 'timeout' ? { acquireTimeoutMs: 1 + (i % 4) } : {};
      const work = pool.run(async (tx) => {
        for (let j = 0; j < caller.sends; j++) await tx.send(rec(`c${i}-r${j}`, j % 2 ? 'b' : 'a'));
        if (caller.offsets) await tx.sendOffsets([{ topic: 'in', partition: 0, offset: i }], { consumer: i });
        for (let k = 0; k < caller.steps; k++) await s.schedule(Promise.resolve(), `work c${i}`);
        if (caller.ending === 'hang') await hangRelease.promise;
        if (caller.ending === 'throw') throw new Error(`c${i} failed`);
      }, { signal: giveUp.signal, ...timeout });
      void work.catch(() => undefined).finally(() => (settled[i] = true));
    }),
  );

  let closing: Promise<void> | undefined;
  let closed = false;
  let steps = 0;
  let quietRounds = 0;
  const deadline = Date.now() + 3_000;
  while (!closed || settled.includes(false)) {
    assert.ok(Date.now() < deadline, `stuck: ${JSON.stringify(pool.stats())}`);
    const onlyHangersLeft = plan.callers.every((c, i) => settled[i] || c.ending === 'hang') && s.count() === 0;
    if (!closing && (steps >= (plan.closeAfterSteps ?? Infinity) || onlyHangersLeft || quietRounds > 20)) {
      closing = pool
        .close({ timeoutMs: plan.closeTimeoutMs })
        .catch((error: unknown) => void problems.push(`close() rejected: ${String(error)}`))
        .finally(() => {
          closed = true;
          // Work that hangs is released once close() gave up on it.
          hangRelease.resolve();
        });
    }
    if (s.count() > 0) {
      await s.waitNext(1);
      steps++;
      quietRounds = 0;
    } else {
      quietRounds++;
      await new Promise((r) => setTimeout(r, 1));
    }
    check(`step ${steps}`);
  }
  assert.deepEqual(problems, []);
  assert.deepEqual(pool.stats().slots.map((slot) => slot.state), Array(plan.size).fill('closed'));
  assert.equal(table.count('closed'), plan.size);
}

const runs = Number(process.env.TXGATE_PROPERTY_RUNS ?? 200);

describe('slot state machine under the pool property test operations (fast-check)', () => {
  it('stats, the idle list and the slots states always agree, and every transition is legal', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), planArb, (s, plan) => checkStatesAgree(s, plan)),
      { numRuns: runs, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true },
    );
    // The table holds no transition the pool never makes (with enough runs to see them all).
    if (runs >= 100) {
      const legal = ALL_PAIRS.filter(([from, to]) => isLegalTransition(from, to)).map(([from, to]) => arrow(from, to));
      assert.deepEqual([...seen].sort(), legal.sort());
    }
  });
});
