/**
 * Fault scenarios under verifier load on a local 3-node cluster (RF 3, min ISR 2), and their
 * report (bench/faults/scenarios.ts says what each scenario does and shows).
 *
 *   npm run faults                      # full: longer loads, per-scenario transaction checks
 *   npm run faults -- --quick           # short loads (what CI runs: test/integration/faults.test.ts)
 *   npm run faults -- --only 1,3,7      # some scenarios (numbers or ids)
 *   npm run faults -- --out DIR         # report directory (default bench/results/faults)
 *   npm run faults -- --only 7 --freeze-s 60   # a longer cluster freeze (default 30 s)
 *   npm run faults -- --render FILE.json        # rewrite FILE.md and its figures from a report's JSON (no run)
 *
 * Writes <out>/<mode>.md (Markdown table + details), <out>/<mode>.json and one SVG figure per
 * scenario, <out>/<mode>-<number>-<id>.svg (answers per second over the timeline), prints the table, and
 * exits 1 when any scenario found an anomaly or could not complete. The cluster uses ports
 * 29092-29097 (--base-port moves them) and takes the test suite's "cluster" port lock, so it
 * never runs beside a test that uses those ports. Everything it starts is stopped on exit,
 * Ctrl-C included.
 */
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_BASE_PORT, withPortLock } from '../test/support/ports.js';
import { describeMachine, markdownTable, renderReport, writeReport, type FaultReport } from './faults/report.js';
import { FaultHarness, SCENARIOS, summaryLine, type ScenarioId } from './faults/scenarios.js';

const REPO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Args {
  quick: boolean;
  only: ScenarioId[];
  out: string;
  basePort: number;
  transactionsCheck: 'per-scenario' | 'at-end' | 'off' | undefined;
  freezeMs: number | undefined;
}

function usage(message?: string): never {
  if (message) console.error(`faults: ${message}`);
  console.error('usage: faults [--quick] [--only 1,3,zombie] [--out DIR] [--base-port N] [--transactions per-scenario|at-end|off] [--freeze-s 30] | --render REPORT.json');
  console.error(`scenarios: ${SCENARIOS.map((x) => `${x.number}=${x.id}`).join(' ')}`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: SCENARIOS.map((x) => x.id), out: path.join(REPO, 'bench', 'results', 'faults'), basePort: CLUSTER_BASE_PORT, transactionsCheck: undefined, freezeMs: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--quick') args.quick = true;
    else if (a === '--full') args.quick = false;
    else if (a === '--only') {
      args.only = value()
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '')
        .map((x) => SCENARIOS.find((sc) => sc.id === x || String(sc.number) === x)?.id ?? usage(`no scenario ${x}`));
    } else if (a === '--out') args.out = path.resolve(value());
    else if (a === '--base-port') args.basePort = Number(value());
    else if (a === '--freeze-s') args.freezeMs = Number(value()) * 1000;
    else if (a === '--transactions') {
      const v = value();
      if (v !== 'per-scenario' && v !== 'at-end' && v !== 'off') usage(`--transactions ${v}`);
      args.transactionsCheck = v;
    } else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument ${a}`);
  }
  return args;
}

function commandArgs(argv: string[]): string {
  const shown = argv.filter((a, i) => !(a === '--out' || argv[i - 1] === '--out'));
  return shown.length === 0 ? '' : ` -- ${shown.join(' ')}`;
}

/** --render FILE.json: the Markdown and the figures again from a report's JSON (after the report format changed). */
async function render(file: string): Promise<number> {
  const { markdown, plots } = await renderReport(file);
  console.error(`faults: wrote ${[markdown, ...plots].map((f) => path.relative(process.cwd(), f)).join(', ')}`);
  return 0;
}

async function main(): Promise<number> {
  const renderAt = process.argv.indexOf('--render');
  if (renderAt >= 0) return render(process.argv[renderAt + 1] ?? usage('--render needs a report JSON file'));
  const args = parseArgs(process.argv.slice(2));
  const mode = args.quick ? 'quick' : 'full';
  const startedAt = new Date();
  const t0 = performance.now();
  const machine = await describeMachine();
  const log = (line: string) => console.error(`faults: ${line}`);
  log(`${mode} run of scenarios ${args.only.join(', ')} on ${machine.cpus} cpus, ${machine.memoryGiB} GiB, Node ${machine.node}, Kafka ${machine.kafka}`);

  const harness = new FaultHarness({ mode, params: args.freezeMs === undefined ? undefined : { freezeMs: args.freezeMs }, basePort: args.basePort, workDir: tmpdir(), transactionsCheck: args.transactionsCheck, log });
  // Ctrl-C or a kill: stop what was started (gateways, frozen or running brokers) before exiting.
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping the gateways and the cluster`);
    harness.killGatewaysNow();
    void harness.close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const run = async (): Promise<number> => {
    try {
      await harness.start();
      for (const id of args.only) {
        if (interrupted) break;
        await harness.run(id);
      }
      if (!interrupted) await harness.checkTransactionsAtEnd();
    } finally {
      await harness.close();
    }
    const report: FaultReport = {
      mode,
      startedAt: startedAt.toISOString(),
      durationS: Math.round((performance.now() - t0) / 1000),
      command: `npm run faults${commandArgs(process.argv.slice(2))}`,
      machine,
      cluster: { nodes: 3, replicationFactor: 3, minInsyncReplicas: 2, startMs: harness.clusterStartMs },
      params: harness.params,
      transactionsCheck: harness.transactionsCheck,
      ok: harness.results.length === args.only.length && harness.results.every((r) => r.verdict === 'OK'),
      scenarios: harness.results,
    };
    const files = await writeReport(args.out, report);
    for (const r of harness.results) log(`${r.number}. ${r.title}: ${summaryLine(r)}`);
    console.log(markdownTable(harness.results));
    log(`report: ${[files.markdown, files.json, ...files.plots].map((f) => path.relative(process.cwd(), f)).join(', ')}`);
    return report.ok ? 0 : 1;
  };
  // The default ports are the test suite's cluster ports: take its lock, as tests do.
  return args.basePort === CLUSTER_BASE_PORT ? withPortLock('cluster', run, { timeoutMs: 60 * 60_000 }) : run();
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
