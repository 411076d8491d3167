// `txgate verify` end to end: two real gateway processes on the test broker, the verifier as a
// child process racing 2,000 keyed requests over both (each key to both at once), then reading
// the topic back and asking Kafka's TransactionsCommand about our transactions: exit 0, zero
// anomalies. And the other way round: the check phase on a topic where one acknowledged record
// was appended a second time finds exactly that duplicate and fails.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, it } from 'node:test';
import { runLoad } from '../../src/verify/load.js';
import { exitCode, verdictLine, type VerifyReport } from '../../src/verify/report.js';
import { checkLoad } from '../../src/verify/run.js';
import { createTopics, produceRecords, testBootstrap, uniqueName } from '../support/kafka.js';
import { freePort, GatewayProcess, TXGATE_BIN } from '../support/gateway-process.js';

const REQUESTS = 2_000;
const RECORDS_PER_REQUEST = 2;
const POOL_SIZE = 8;

const bootstrap = testBootstrap();
const tag = uniqueName('verify');
const idempotencyTopic = uniqueName('verify-idem');
let gateways: GatewayProcess[] = [];

before(async () => {
  gateways = await Promise.all(
    ['a', 'b'].map(
      async (name) =>
        new GatewayProcess({
          label: `gateway ${name}`,
          brokers: bootstrap,
          port: await freePort(),
          instanceId: `${tag}-${name}`,
          args: ['--idempotency-topic', idempotencyTopic, '--pool-size', String(POOL_SIZE)],
        }),
    ),
  );
  // One after the other: the first creates the idempotency topic.
  for (const gw of gateways) await gw.ready();
});

after(async () => {
  await Promise.all(gateways.map((gw) => gw.kill('SIGTERM')));
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // flags decide everything: no TXGATE_* from the caller's environment
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TXGATE_')));
  const child = spawn(process.execPath, [TXGATE_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

it(`txgate verify races ${REQUESTS} requests over two gateways and finds every record exactly once`, { timeout: 600_000 }, async () => {
  const topic = uniqueName('verify-data');
  const run = await runCli([
    'verify',
    '--brokers', bootstrap,
    ...gateways.flatMap((gw) => ['--gateway', gw.url]),
    '--race',
    '--topic', topic,
    '--create-topic',
    '--partitions', '3',
    '--requests', String(REQUESTS),
    '--concurrency', '64',
    '--records-per-request', String(RECORDS_PER_REQUEST),
    '--check-transactions',
    '--transactional-id-prefix', `txgate-${tag}-`,
    '--max-transactional-ids', String(2 * POOL_SIZE),
    '--json',
    '--quiet',
  ]);
  const context = `exit ${run.code}\nstderr:\n${run.stderr}\ngateway logs:\n${gateways.flatMap((g) => g.logs).slice(-40).join('\n')}`;
  assert.ok(run.stdout.trim().startsWith('{'), context);
  const report = JSON.parse(run.stdout) as VerifyReport;
  console.log(run.stderr.trim().split('\n').at(-1));

  assert.deepEqual(report.anomalies, {
    lost: 0,
    duplicated: 0,
    partial: 0,
    phantom: 0,
    misplaced: 0,
    corrupt: 0,
    unexpected: 0,
    conflicting: 0,
    ongoingTransactions: 0,
    hangingTransactions: 0,
    excessTransactionalIds: 0,
  }, context);
  assert.equal(run.code, 0, context);
  assert.equal(report.verdict, 'OK');
  assert.match(run.stderr, /^verify: OK /m);
  assert.deepEqual(report.requests, { sent: REQUESTS, acknowledged: REQUESTS, failed: 0, undecided: 0, undecidedPresent: 0, undecidedAbsent: 0 });
  assert.equal(report.records.read, REQUESTS * RECORDS_PER_REQUEST, 'every record read back once');
  // race: both gateways answered every key; of each pair at most one committed, the other replayed it
  assert.equal(report.load.answers['200'], 2 * REQUESTS);
  assert.ok(report.load.replayed >= REQUESTS, `replayed ${report.load.replayed}`);
  for (const gw of gateways) assert.equal(report.load.perGateway[gw.url]?.acknowledged, REQUESTS);
  assert.ok(report.load.latencyMs.p50 > 0 && report.load.latencyMs.p99 >= report.load.latencyMs.p50);
  // the broker's view, through Kafka's own TransactionsCommand: the gateways' pooled ids, nothing open
  assert.equal(report.transactions.checked, true, JSON.stringify(report.transactions));
  if (report.transactions.checked) {
    assert.equal(report.transactions.transactionalIds, 2 * POOL_SIZE, 'one transactional id per pool slot, none per request');
    assert.deepEqual(report.transactions.ongoing, []);
    assert.deepEqual(report.transactions.hanging, []);
    assert.ok(report.transactions.brokers.length > 0);
  }
});

it('the check phase finds one acknowledged record appended twice: duplicated=1, FAILED', { timeout: 300_000 }, async () => {
  const topic = uniqueName('verify-dup');
  await createTopics(bootstrap, [{ topic, partitions: 2 }]);
  const load = await runLoad({ gateways: gateways.map((g) => g.url), mode: 'spray', topics: [topic], requests: 50, concurrency: 8 });
  assert.ok(load.requests.every((r) => r.outcomes[0]?.kind === 'acknowledged'));

  const clean = await checkLoad(load, { brokers: bootstrap, checkTransactions: false });
  assert.equal(clean.verdict, 'OK', verdictLine(clean));

  // the same key and value once more, as a non-transactional producer retrying without idempotence would
  const victim = load.requests[17]!.records[0]!;
  await produceRecords(bootstrap, [{ topic, key: victim.key, value: victim.value }]);

  const report = await checkLoad(load, { brokers: bootstrap, checkTransactions: false });
  assert.deepEqual(
    { ...report.anomalies },
    { lost: 0, duplicated: 1, partial: 0, phantom: 0, misplaced: 0, corrupt: 0, unexpected: 0, conflicting: 0, ongoingTransactions: 0, hangingTransactions: 0, excessTransactionalIds: 0 },
  );
  assert.equal(report.records.extraCopies, 1);
  assert.equal(report.examples[0]?.recordKey, victim.key);
  assert.equal(report.verdict, 'FAILED');
  assert.match(verdictLine(report), /^verify: FAILED lost=0 duplicated=1 /);
  assert.equal(exitCode(report), 1);
});
