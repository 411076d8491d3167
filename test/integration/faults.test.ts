/**
 * Fault scenarios under `txgate verify` load, CI-sized (bench/faults/scenarios.ts, quick mode):
 * one 3-node cluster (RF 3, min ISR 2), and for each scenario real `txgate serve` processes
 * taking a steady load of keyed, retried requests while a fault is injected and repaired. The
 * verifier then reads everything back (read_committed) and every anomaly count must be 0: lost,
 * duplicated, partial, phantom, misplaced, corrupt, unexpected, conflicting; and at the end
 * Kafka's TransactionsCommand must list no transaction of ours still open or hanging.
 *
 * By default scenarios 1 (data leader kill -9 + restart), 2 (coordinator kill -9 + restart), 3
 * (gateway kill -9 + restart with the same id), 4 (rolling SIGTERM restart), 5 (zombie with the
 * same instance id), 6 (two gateways racing on every key) and 7 (whole cluster SIGSTOPped for
 * 30 s) run. TXGATE_FAULTS_SCENARIOS=all adds 8 (topic deleted under load), or lists numbers
 * (e.g. "1,3,5,7"). TXGATE_FAULTS_BASE_PORT moves the cluster off the suite's shared cluster ports
 * (29092-29097, taken under the "cluster" port lock). Timings are printed, never asserted:
 * `npm run faults` makes the full report.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { after, before, it } from 'node:test';
import { markdownTable } from '../../bench/faults/report.js';
import { FaultHarness, SCENARIOS, summaryLine, type ScenarioId, type ScenarioResult } from '../../bench/faults/scenarios.js';
import { CLUSTER_BASE_PORT, withPortLock } from '../support/ports.js';

const DEFAULT_SCENARIOS = [1, 2, 3, 4, 5, 6, 7];
const chosen = (process.env.TXGATE_FAULTS_SCENARIOS ?? '').trim();
const numbers = chosen === 'all' ? SCENARIOS.map((s) => s.number) : chosen === '' ? DEFAULT_SCENARIOS : chosen.split(',').map((n) => Number(n.trim()));
const selected = new Set(numbers);
const basePort = Number(process.env.TXGATE_FAULTS_BASE_PORT) || CLUSTER_BASE_PORT;

let harness: FaultHarness | undefined;
let releaseLock: (() => void) | undefined;
let lockReleased: Promise<void> | undefined;

before(
  async () => {
    // The cluster's ports are shared with other test files: hold their lock for the whole file.
    if (basePort === CLUSTER_BASE_PORT) {
      await new Promise<void>((acquired, failed) => {
        lockReleased = withPortLock(
          'cluster',
          () =>
            new Promise<void>((release) => {
              releaseLock = release;
              acquired();
            }),
          { timeoutMs: 20 * 60_000 },
        ).catch(failed);
      });
    }
    harness = new FaultHarness({
      mode: 'quick',
      basePort,
      workDir: tmpdir(),
      transactionsCheck: 'at-end',
      log: (line) => console.log(`# ${line}`),
    });
    await harness.start();
  },
  { timeout: 25 * 60_000 },
);

after(async () => {
  try {
    if (harness && harness.results.length > 0) {
      console.log(`# fault scenarios (quick):\n${markdownTable(harness.results).replace(/^/gm, '# ')}`);
    }
  } finally {
    await harness?.close();
    releaseLock?.();
    await lockReleased;
  }
});

async function run(id: ScenarioId): Promise<ScenarioResult> {
  assert.ok(harness, 'the cluster started');
  const r = await harness.run(id);
  console.log(`# ${r.number}. ${summaryLine(r)}`);
  for (const [label, counts] of Object.entries(r.gatewayLogs)) {
    if (Object.keys(counts).length > 0) console.log(`#   ${label} log: ${JSON.stringify(counts)}`);
  }
  return r;
}

/** Ran to the end, something was acknowledged, and the verifier found no anomaly. */
function assertClean(r: ScenarioResult): void {
  const context = `${summaryLine(r)}\ntimeline:\n${r.timeline.map((t) => `  ${(t.atMs / 1000).toFixed(1)} s ${t.what}`).join('\n')}\nexamples: ${JSON.stringify(r.examples, null, 1)}`;
  assert.equal(r.error, undefined, context);
  assert.deepEqual(
    { ...r.anomalies },
    { lost: 0, duplicated: 0, partial: 0, phantom: 0, misplaced: 0, corrupt: 0, unexpected: 0, conflicting: 0, ongoingTransactions: 0, hangingTransactions: 0, excessTransactionalIds: 0 },
    context,
  );
  assert.ok(r.requests.acknowledged > 0, context);
  assert.ok(r.recordsRead > 0, context);
  assert.deepEqual(r.problems, [], context);
  assert.equal(r.verdict, 'OK', context);
}

const info = (n: number) => SCENARIOS.find((s) => s.number === n)!;
const maybe = (n: number) => (selected.has(n) ? {} : { skip: `not in TXGATE_FAULTS_SCENARIOS (${[...selected].join(',')})` });
const TIMEOUT = { timeout: 10 * 60_000 };

it(`1. ${info(1).title}: every acknowledged request exactly once`, { ...TIMEOUT, ...maybe(1) }, async () => {
  const r = await run('broker-leader');
  assertClean(r);
  assert.ok(typeof r.figures.killed === 'number', 'a broker was killed');
  assert.ok(!(r.figures.coordinators as number[]).includes(r.figures.killed as number), 'the killed broker was not our coordinator');
  assert.deepEqual(r.recovery.map((x) => x.event), ['after the kill', 'after the restart']);
  for (const x of r.recovery) assert.notEqual(x.firstAckMs, null, `acknowledgements ${x.event}`);
});

it(`2. ${info(2).title}: every acknowledged request exactly once`, { ...TIMEOUT, ...maybe(2) }, async () => {
  const r = await run('coordinator');
  assertClean(r);
  assert.deepEqual(r.figures.coordinators, [r.figures.killed], 'Kafka listed the killed broker as the coordinator of all our ids');
  for (const x of r.recovery) assert.notEqual(x.firstAckMs, null, `acknowledgements ${x.event}`);
});

it(`3. ${info(3).title}: requests cut off by the crash are answered once, by the successor`, { ...TIMEOUT, ...maybe(3) }, async () => {
  const r = await run('gateway-kill');
  assertClean(r);
  assert.ok((r.figures.inFlightAtKill as number) > 0, 'requests were in flight when the gateway died');
  assert.ok((r.errorAnswers['connection-error'] ?? 0) > 0, 'clients saw the crash');
});

it(`4. ${info(4).title}: both drain cleanly, no request is lost`, { ...TIMEOUT, ...maybe(4) }, async () => {
  const r = await run('rolling-restart');
  assertClean(r);
  const restarts = r.figures.restarts as Record<string, { exit: number | string }>;
  assert.deepEqual(
    Object.fromEntries(Object.entries(restarts).map(([k, v]) => [k, v.exit])),
    { A: 0, B: 0 },
    'each gateway exited 0 after SIGTERM: its in-flight requests finished',
  );
});

it(`5. ${info(5).title}: fencing keeps every write exactly-once`, { ...TIMEOUT, ...maybe(5) }, async () => {
  const r = await run('zombie');
  assertClean(r);
  assert.notEqual(r.figures.zombieReadyMs, null, 'the zombie started and served');
  assert.ok(r.requests.sent > 0);
  assert.equal(r.recovery.length, 1, 'the live gateway acknowledged requests again after the zombie stopped');
});

it(`6. ${info(6).title}: one commit per key, the other side replays it`, { ...TIMEOUT, ...maybe(6) }, async () => {
  const r = await run('race');
  assertClean(r);
  // a request answered 200 by both gateways was committed once (no duplicate was read back), so
  // at least one of its two answers is a replay of the other's commit
  const both = r.figures.acknowledgedByBoth as number;
  assert.ok(both > 0, 'requests were answered by both gateways');
  assert.ok((r.figures.replayed as number) >= both, `replayed ${String(r.figures.replayed)}, answered by both ${both}`);
});

it(`7. ${info(7).title}: /readyz says so, nothing is lost, it recovers by itself`, { ...TIMEOUT, ...maybe(7) }, async (t) => {
  const r = await run('freeze');
  const freeze = r.figures.freeze as {
    readyz: { answers: Record<string, number>; detail: string | null };
    arrivals: Array<{ atMs: number; answer: string; answerMs: number; afterNotReady: boolean }>;
  };
  console.log(`# 7. during the freeze: ${JSON.stringify(r.figures.freeze)}`);
  assertClean(r);
  assert.ok((freeze.readyz.answers['503'] ?? 0) > 0, `/readyz answered 503 during the freeze: ${JSON.stringify(freeze.readyz)}`);
  assert.match(freeze.readyz.detail ?? '', /kafka/i, '/readyz names Kafka');
  assert.equal(r.recovery.length, 1, 'acknowledgements resumed after SIGCONT without a restart');
  const informed = freeze.arrivals.filter((a) => a.afterNotReady);
  assert.ok(informed.length > 0, `clients arrived after /readyz turned 503: ${JSON.stringify(freeze.arrivals)}`);
  await t.test(
    'while /readyz reports Kafka unreachable, a new transaction is refused at once with 503 TXGATE_KAFKA_UNAVAILABLE',
    () => {
      assert.deepEqual(
        informed.map((a) => a.answer),
        informed.map(() => '503 TXGATE_KAFKA_UNAVAILABLE'),
        `first answers of the clients that arrived after /readyz turned 503: ${JSON.stringify(informed)}`,
      );
    },
  );
});

it(`8. ${info(8).title}: no phantom in the surviving topic, which stays served`, { ...TIMEOUT, ...maybe(8) }, async () => {
  const r = await run('topic-delete');
  assertClean(r);
  assert.ok((r.errorAnswers['404 TXGATE_UNKNOWN_TOPIC'] ?? 0) > 0, 'requests naming the deleted topic got a 404 in the end');
  assert.equal(r.recovery.length, 1, 'the load on the surviving topic kept being acknowledged');
});

it("Kafka's TransactionsCommand lists no transaction of ours open or hanging, and one id per pool slot", { timeout: 5 * 60_000 }, async () => {
  assert.ok(harness);
  if (harness.results.length === 0) return;
  await harness.checkTransactionsAtEnd();
  for (const r of harness.results) {
    console.log(`# ${r.number}. transactions: ${JSON.stringify(r.transactions).slice(0, 300)}`);
    assert.equal(r.transactions.checked, true, `${r.number}: ${JSON.stringify(r.transactions)}`);
    assert.equal(r.anomalies.ongoingTransactions, 0, `${r.number}: ${JSON.stringify(r.transactions)}`);
    assert.equal(r.anomalies.hangingTransactions, 0, `${r.number}: ${JSON.stringify(r.transactions)}`);
    assert.equal(r.anomalies.excessTransactionalIds, 0, `${r.number}: ${JSON.stringify(r.transactions)}`);
  }
});
