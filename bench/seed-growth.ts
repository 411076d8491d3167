/**
 * What the seed's design does to the broker over time, next to the gateway doing the same work.
 *
 * The seed creates a transactional producer with a random UUID transactional.id per request. The
 * coordinator keeps every one of those ids (and its metadata in the broker's heap) until
 * transactional.id.expiration.ms passes (7 days by default), and each partition leader keeps the
 * state of every producer id that wrote to it until producer.id.expiration.ms (1 day by default).
 * That growth, not only the throughput, is what made the seed's service fall over.
 *
 * For each service in turn, on a fresh local broker: start it, put it under the same steady load
 * (autocannon in its own process) for N minutes, and sample every 10 s the transactional ids the
 * coordinator holds (Kafka's TransactionsCommand list), the broker JVM's heap (jstat -gc), its
 * RSS, open fds and threads, the __transaction_state log on disk, and committed requests/s. At
 * the end of each phase: the broker's live heap after a full GC and its largest classes
 * (jcmd GC.class_histogram), and the producer state each partition holds (describe-producers).
 * Results: bench/results/growth.{json,md,svg}.
 *
 *   npm run bench:growth                          # 3 minutes per service, 100 req/s over 100 connections
 *   npm run bench:growth -- --minutes 10
 *   npm run bench:growth -- --rate 0              # closed loop: each service as fast as it goes
 *
 * Options: --minutes M (3), --rate R (requests/s over all connections, 100; 0: closed loop),
 * --connections C (100), --records N per request (1), --interval S between samples (10),
 * --out DIR (instead of bench/results). Broker port: BENCH_KAFKA_PORT (19692; the controller uses the next).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LocalKafka, ensureTopics } from '../src/local-kafka/index.js';
import { runLauncher } from '../src/local-kafka/launcher.js';
import { GatewayProcess, freePort } from '../test/support/gateway-process.js';
import { listTransactionalIds } from '../test/support/kafka.js';
import { procStatusMiB } from '../test/support/proc.js';
import { CHILD_ENV, ServerProcess, TSX } from './lib/harness.js';
import type { LoadgenSpec } from './lib/loadgen.js';
import { renderSvg, timeSeriesSpec, type SeriesRow } from './lib/plots.js';
import { sleep } from './lib/stats.js';
import { gatewayBody, VALUE_BYTES, type RunResult } from './lib/work.js';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const MINUTES = Number(option('minutes') ?? 3);
const RATE = Number(option('rate') ?? 100);
const CONNECTIONS = Number(option('connections') ?? 100);
const RECORDS = Number(option('records') ?? 1);
const INTERVAL = Number(option('interval') ?? 10);
const OUT = path.resolve(option('out') ?? path.join(BENCH, 'results'));
const PORT = Number(process.env.BENCH_KAFKA_PORT ?? 19692);
const PARTITIONS = 6;
const GATEWAY_POOL = 8;
const SERVICES = ['seed', 'gateway'] as const;
type Service = (typeof SERVICES)[number];
const LABEL: Record<Service, string> = {
  seed: 'seed: producer per request (HTTP)',
  gateway: `txgate serve (pool of ${GATEWAY_POOL}, group commit)`,
};

interface Sample {
  /** Minutes since the load started; the sample at 0 is taken just before it. */
  minutes: number;
  /** Taken once the load had ended (its last requests drained). */
  afterLoad?: boolean;
  /** How long taking this sample took (the ids listing starts a JVM). */
  sampleSeconds: number;
  transactionalIds: number;
  /** When the ids listing answered: a few seconds after `minutes`, while the load goes on. */
  idsMinutes: number;
  heapUsedMiB: number;
  oldGenMiB: number;
  heapCommittedMiB: number;
  youngGcs: number;
  fullGcs: number;
  brokerRssMiB: number;
  brokerFds: number;
  brokerThreads: number;
  transactionLogMiB: number;
  /** The service under test (seed server or gateway). */
  serverRssMiB: number;
  /** Committed requests since the load started, and per second since the previous sample. */
  committed: number;
  requestsPerSec: number;
}

interface Phase {
  service: Service;
  label: string;
  loadAverageBefore: number[];
  loadAverageAfter: number[];
  samples: Sample[];
  load: RunResult;
  /**
   * The broker's live heap after a full GC (jcmd GC.class_histogram) before the load and after it,
   * and the classes that grew most in between: what the run left in the broker's memory.
   */
  liveHeap?: { beforeMiB: number; afterMiB: number; grewMiB: number; grew: HistogramRow[] };
  /** Producer ids whose state each partition of the topic holds, after the load. */
  producerStates?: number[];
  notes: string[];
}

interface HistogramRow {
  className: string;
  instances: number;
  MiB: number;
}

const MiB = (bytes: number) => bytes / 2 ** 20;
const round = (n: number, d = 1) => (Number.isFinite(n) ? Math.round(n * 10 ** d) / 10 ** d : NaN);

// ---------------------------------------------------------------------------------------------
// What the broker holds

/** jstat -gc: heap used (survivors + eden + old), old generation used, committed, GC counts. */
async function jstatGc(pid: number): Promise<Pick<Sample, 'heapUsedMiB' | 'oldGenMiB' | 'heapCommittedMiB' | 'youngGcs' | 'fullGcs'>> {
  const { stdout } = await run('jstat', ['-gc', String(pid)], { timeout: 30_000 });
  const [header = '', values = ''] = stdout.trim().split('\n');
  const names = header.trim().split(/\s+/);
  const nums = values.trim().split(/\s+/).map(Number);
  const v = (name: string) => nums[names.indexOf(name)] ?? NaN;
  const kb = (...n: string[]) => n.reduce((sum, name) => sum + v(name), 0) / 1024;
  return {
    heapUsedMiB: kb('S0U', 'S1U', 'EU', 'OU'),
    oldGenMiB: kb('OU'),
    heapCommittedMiB: kb('S0C', 'S1C', 'EC', 'OC'),
    youngGcs: v('YGC'),
    fullGcs: v('FGC'),
  };
}

interface Histogram {
  bytes: number;
  classes: Map<string, { instances: number; bytes: number }>;
}

/** jcmd GC.class_histogram: it runs a full GC first, so its total is the live heap. */
async function histogram(pid: number): Promise<Histogram> {
  const { stdout } = await run('jcmd', [String(pid), 'GC.class_histogram'], { timeout: 120_000, maxBuffer: 256 * 2 ** 20 });
  const classes = new Map<string, { instances: number; bytes: number }>();
  let bytes = NaN;
  for (const line of stdout.split('\n')) {
    const m = /^\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)/.exec(line);
    if (m) classes.set(m[3]!, { instances: Number(m[1]), bytes: Number(m[2]) });
    const t = /^Total\s+\d+\s+(\d+)/.exec(line);
    if (t) bytes = Number(t[1]);
  }
  return { bytes, classes };
}

function heapGrowth(before: Histogram, after: Histogram): NonNullable<Phase['liveHeap']> {
  const grew = [...after.classes].map(([className, a]) => {
    const b = before.classes.get(className) ?? { instances: 0, bytes: 0 };
    return { className, instances: a.instances - b.instances, MiB: MiB(a.bytes - b.bytes) };
  });
  grew.sort((x, y) => y.MiB - x.MiB);
  return {
    beforeMiB: round(MiB(before.bytes)),
    afterMiB: round(MiB(after.bytes)),
    grewMiB: round(MiB(after.bytes - before.bytes)),
    grew: grew.slice(0, 10).map((r) => ({ ...r, MiB: round(r.MiB, 2) })),
  };
}

/** Producer ids whose state one partition's leader keeps (TransactionsCommand describe-producers). */
async function producerStates(bootstrap: string, topic: string, partition: number): Promise<number> {
  const out = await runLauncher('transactions', ['describe-producers', '--topic', topic, '--partition', String(partition)], { KAFKA_BOOTSTRAP: bootstrap });
  return out.split('\n').filter((l) => /^\s*\d+\s/.test(l)).length;
}

/** The coordinator's log segments (.log files only: index files are preallocated at 10 MiB each). */
function transactionLogMiB(dataDir: string): number {
  try {
    let bytes = 0;
    for (const d of readdirSync(dataDir).filter((n) => n.startsWith('__transaction_state-'))) {
      for (const f of readdirSync(path.join(dataDir, d)).filter((n) => n.endsWith('.log'))) bytes += statSync(path.join(dataDir, d, f)).size;
    }
    return MiB(bytes);
  } catch {
    return NaN;
  }
}

function fds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

function threads(pid: number): number {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// The load, in its own process, reporting progress as it goes

interface Progress {
  t: number;
  sent: number;
  answered: number;
  ok: number;
  errors: number;
}

function startLoad(spec: LoadgenSpec): { latest: () => Progress | undefined; done: Promise<RunResult> } {
  const child = spawn(process.execPath, [...TSX, path.join(BENCH, 'lib', 'loadgen.ts'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let latest: Progress | undefined;
  let result: RunResult | undefined;
  let buffered = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      try {
        const parsed = JSON.parse(line) as { progress?: Progress } & RunResult;
        if (parsed.progress) latest = parsed.progress;
        else result = parsed;
      } catch {
        // not ours
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (result ? resolve(result) : reject(new Error(`the load generator exited with ${code}:\n${err}`))));
  });
  return { latest: () => latest, done };
}

// ---------------------------------------------------------------------------------------------
// One phase: a fresh broker, one service, N minutes of load

async function startService(service: Service, bootstrap: string, runId: string): Promise<{ url: string; pid: number | undefined; stop: () => Promise<unknown> }> {
  const port = await freePort();
  if (service === 'seed') {
    const s = await ServerProcess.start(process.execPath, [...TSX, path.join(BENCH, 'lib', 'servers.ts'), 'seed', String(port), bootstrap, `growth-seed-${runId}`], port, undefined, CHILD_ENV);
    return { url: s.url, pid: s.child.pid, stop: () => s.stop() };
  }
  const g = new GatewayProcess({
    label: 'gateway',
    brokers: bootstrap,
    port,
    instanceId: 'growth',
    args: ['--pool-size', String(GATEWAY_POOL), '--transactional-id-prefix', `growth-gw-${runId}`, '--idempotency-topic', `growth-idem-${runId}`],
  });
  await g.ready();
  return { url: g.url, pid: g.pid, stop: () => g.stop() };
}

async function phase(service: Service): Promise<Phase> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'txgate-bench-growth-'));
  const local = new LocalKafka({ port: PORT, stateDir });
  const notes: string[] = [];
  const loadAverageBefore = os.loadavg().map((l) => round(l, 2));
  try {
    const bootstrap = await local.start();
    const brokerPid = await local.pid();
    if (brokerPid === undefined) throw new Error('the local broker runs but its pid is unknown');
    const runId = `${Date.now()}`;
    const topic = `growth-${service}-${runId}`;
    await ensureTopics(bootstrap, [{ topic, partitions: PARTITIONS }]);
    const server = await startService(service, bootstrap, runId);
    const dataDir = path.join(local.nodeDir!, 'data');
    try {
      const samples: Sample[] = [];
      let previous: { t: number; ok: number } = { t: 0, ok: 0 };
      let loadStarted = performance.now();
      const sinceLoad = (t: number) => Math.max(0, (t - loadStarted) / 60_000);
      const take = async (latest: () => Progress | undefined, when: 'before' | 'during' | 'after'): Promise<void> => {
        const before = when === 'before';
        const t0 = performance.now();
        const minutes = before ? 0 : sinceLoad(t0);
        const quick = {
          brokerRssMiB: procStatusMiB(brokerPid, 'VmRSS'),
          brokerFds: fds(brokerPid),
          brokerThreads: threads(brokerPid),
          transactionLogMiB: transactionLogMiB(dataDir),
          serverRssMiB: procStatusMiB(server.pid, 'VmRSS'),
        };
        const heap = await jstatGc(brokerPid).catch((error: unknown) => {
          notes.push(`jstat failed at ${round(minutes, 2)} min: ${String(error).split('\n')[0]}`);
          return { heapUsedMiB: NaN, oldGenMiB: NaN, heapCommittedMiB: NaN, youngGcs: NaN, fullGcs: NaN };
        });
        // Committed so far as the sample starts (the load reports every second), before the slow listing.
        const now = latest() ?? previous;
        const ids = await listTransactionalIds(bootstrap).then(
          (list) => list.length,
          (error: unknown) => (notes.push(`transactions list failed at ${round(minutes, 2)} min: ${String(error).split('\n')[0]}`), NaN),
        );
        const idsMinutes = before ? 0 : sinceLoad(performance.now());
        const rate = when === 'during' && now.t > previous.t ? (now.ok - previous.ok) / (now.t - previous.t) : NaN;
        previous = { t: now.t, ok: now.ok };
        const s: Sample = {
          minutes: round(minutes, 3),
          ...(when === 'after' ? { afterLoad: true } : {}),
          sampleSeconds: round((performance.now() - t0) / 1000, 2),
          transactionalIds: ids,
          idsMinutes: round(idsMinutes, 3),
          ...Object.fromEntries(Object.entries(heap).map(([k, v]) => [k, round(v)])),
          ...Object.fromEntries(Object.entries(quick).map(([k, v]) => [k, round(v)])),
          committed: now.ok,
          requestsPerSec: round(rate),
        } as Sample;
        samples.push(s);
        console.log(
          `${service.padEnd(8)} ${fmt(s.minutes, 2).padStart(5)} min  ids ${fmt(s.transactionalIds)}  heap ${fmt(s.heapUsedMiB)} MiB (old ${fmt(s.oldGenMiB)})  ` +
            `RSS ${fmt(s.brokerRssMiB)} MiB  fds ${fmt(s.brokerFds)}  threads ${fmt(s.brokerThreads)}  txn log ${fmt(s.transactionLogMiB, 1)} MiB  ${fmt(s.requestsPerSec, 1)} req/s`,
        );
      };

      const heapBefore = await histogram(brokerPid).catch((error: unknown) => (notes.push(`jcmd GC.class_histogram failed: ${String(error).split('\n')[0]}`), undefined));
      await take(() => undefined, 'before');
      loadStarted = performance.now();
      const load = startLoad({
        url: `${server.url}/v1/transactions`,
        connections: CONNECTIONS,
        seconds: MINUTES * 60,
        body: gatewayBody(topic, RECORDS),
        contentType: 'application/json',
        timeoutSeconds: 30,
        ...(RATE > 0 ? { rate: RATE } : {}),
        progressSeconds: 1,
      });
      let finished = false;
      const done = load.done.finally(() => (finished = true));
      // Samples on a fixed schedule from the load's start; one that overruns its slot delays the next.
      for (let k = 1; !finished; k++) {
        const due = loadStarted + k * INTERVAL * 1000;
        await Promise.race([done.catch(() => {}), sleep(Math.max(0, due - performance.now()))]);
        if (finished) break;
        await take(load.latest, 'during');
      }
      const result = await done;
      // One last sample once the load has ended (its last requests drained).
      await take(load.latest, 'after');
      const heapAfter = heapBefore && (await histogram(brokerPid).catch((error: unknown) => (notes.push(`jcmd GC.class_histogram failed: ${String(error).split('\n')[0]}`), undefined)));
      const live = heapBefore && heapAfter ? heapGrowth(heapBefore, heapAfter) : undefined;
      const states: number[] = [];
      for (let p = 0; p < PARTITIONS; p++) states.push(await producerStates(bootstrap, topic, p).catch(() => NaN));
      return {
        service,
        label: LABEL[service],
        loadAverageBefore,
        loadAverageAfter: os.loadavg().map((l) => round(l, 2)),
        samples,
        load: result,
        ...(live ? { liveHeap: live } : {}),
        producerStates: states,
        notes,
      };
    } finally {
      await server.stop();
    }
  } finally {
    await local.stop().catch((error: unknown) => console.error(`stopping the broker: ${String(error)}`));
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '-');

/** Least-squares slope of y against x (minutes), over the samples taken before and under load. */
function perMinute(samples: Sample[], x: (s: Sample) => number, y: (s: Sample) => number): number {
  const pts = samples.filter((s) => !s.afterLoad && Number.isFinite(y(s))).map((s) => [x(s), y(s)] as const);
  if (pts.length < 2) return NaN;
  const mx = pts.reduce((a, [px]) => a + px, 0) / pts.length;
  const my = pts.reduce((a, [, py]) => a + py, 0) / pts.length;
  const sxx = pts.reduce((a, [px]) => a + (px - mx) ** 2, 0);
  return sxx === 0 ? NaN : pts.reduce((a, [px, py]) => a + (px - mx) * (py - my), 0) / sxx;
}

function summary(p: Phase) {
  const first = p.samples[0]!;
  const last = p.samples[p.samples.length - 1]!;
  return {
    requestsPerSec: p.load.ok / p.load.seconds,
    committed: p.load.ok,
    idsEnd: last.transactionalIds,
    idsPerMinute: perMinute(p.samples, (s) => s.idsMinutes, (s) => s.transactionalIds),
    idsPerCommitted: p.load.ok > 0 ? last.transactionalIds / p.load.ok : NaN,
    first,
    last,
    producerStates: (p.producerStates ?? []).reduce((a, b) => a + b, 0),
  };
}

function markdown(phases: Phase[], info: Record<string, unknown>): string {
  const week = 60 * 24 * 7;
  const lines = [
    '# What the seed\'s design does to the broker over time',
    '',
    `Command: \`npm run bench:growth -- --minutes ${MINUTES}${RATE !== 100 ? ` --rate ${RATE}` : ''}${CONNECTIONS !== 100 ? ` --connections ${CONNECTIONS}` : ''}\`. ` +
      `Each service ran for ${MINUTES} min under the same load: ${RATE > 0 ? `${RATE} requests/s in all over ${Math.min(CONNECTIONS, RATE)} connections` : `a closed loop on ${CONNECTIONS} connections`}, ` +
      `${RECORDS} record(s) of ${VALUE_BYTES} B per request to one topic of ${PARTITIONS} partitions (autocannon in its own process). A sample every ${INTERVAL} s.`,
    '',
    `- **${LABEL.seed}**: \`node:http\`, a transactional producer with a random UUID \`transactional.id\` per request (init, begin, send, commit, close).`,
    `- **${LABEL.gateway}**: \`txgate serve\` with its default group commit.`,
    '',
    'Each service ran on its own fresh broker (formatted anew; same port, settings and heap, `-Xms256m -Xmx512m`). Restarting one broker instead would have ' +
      'reloaded the seed\'s ids from `__transaction_state`, where they stay until they expire, so the gateway would have started with the seed\'s state.',
    '',
    'Kafka drops an idle transactional id only once `transactional.id.expiration.ms` has passed without a transaction on it (**7 days** by default; the coordinator ' +
      'looks for expired ids hourly), and a partition leader keeps each producer id\'s state until `producer.id.expiration.ms` (1 day by default). ' +
      'So the seed\'s ids accumulate: one per request, each held in the coordinator\'s memory and its log for a week. The gateway reuses its pool\'s ids.',
    '',
    `Machine: ${String(info.cpus)} × ${String(info.cpuModel)}, ${String(info.memoryGiB)} GiB; Node ${String(info.node)}; ${String(info.java)}.`,
    '',
    '## Summary',
    '',
    '| | ' + phases.map((p) => p.label).join(' | ') + ' |',
    '|---|' + phases.map(() => '---:|').join(''),
  ];
  const s = phases.map(summary);
  const row = (name: string, cell: (x: ReturnType<typeof summary>, p: Phase) => string) => lines.push(`| ${name} | ${s.map((x, i) => cell(x, phases[i]!)).join(' | ')} |`);
  row('committed requests/s (mean)', (x) => fmt(x.requestsPerSec, 1));
  row('committed requests', (x) => fmt(x.committed));
  row('latency p50 / p99 ms', (_, p) => `${fmt(p.load.p50, 1)} / ${fmt(p.load.p99, 1)}`);
  row('errors; never answered', (_, p) => `${Object.entries(p.load.errors).map(([k, v]) => `${k}: ${v}`).join(', ') || '0'}; ${p.load.neverAnswered ?? '-'}`);
  row('transactional ids on the coordinator at the end', (x) => fmt(x.idsEnd));
  row('… growth per minute', (x) => fmt(x.idsPerMinute, 1));
  row(`… after 7 days at that rate (before any expires)`, (x) => (x.idsPerMinute > 1 ? fmt(x.idsPerMinute * week) : 'flat'));
  row('producer ids whose state the partitions hold (sum over partitions)', (x) => fmt(x.producerStates));
  row('broker heap used, start → end MiB', (x) => `${fmt(x.first.heapUsedMiB)} → ${fmt(x.last.heapUsedMiB)}`);
  row('broker old gen used, start → end MiB', (x) => `${fmt(x.first.oldGenMiB)} → ${fmt(x.last.oldGenMiB)}`);
  row('broker live heap after a full GC, before → after the load, MiB', (_, p) => (p.liveHeap ? `${fmt(p.liveHeap.beforeMiB, 1)} → ${fmt(p.liveHeap.afterMiB, 1)}` : '-'));
  row('… per transactional id added, bytes', (x, p) => {
    const added = x.last.transactionalIds - x.first.transactionalIds;
    return p.liveHeap && added > 100 ? fmt((p.liveHeap.grewMiB * 2 ** 20) / added) : '-';
  });
  row('broker RSS, start → end MiB', (x) => `${fmt(x.first.brokerRssMiB)} → ${fmt(x.last.brokerRssMiB)}`);
  row('broker open fds, start → end', (x) => `${fmt(x.first.brokerFds)} → ${fmt(x.last.brokerFds)}`);
  row('broker threads, start → end', (x) => `${fmt(x.first.brokerThreads)} → ${fmt(x.last.brokerThreads)}`);
  row('`__transaction_state` on disk, end MiB', (x) => fmt(x.last.transactionLogMiB, 1));
  row('service RSS, end MiB', (x) => fmt(x.last.serverRssMiB));
  row('load average before → after', (_, p) => `${p.loadAverageBefore.join(' ')} → ${p.loadAverageAfter.join(' ')}`);
  lines.push(
    '',
    'Heap used saws up and down with young collections; old gen used holds what survives them and drops only at mixed collections; ' +
      'the live heap after a full GC (`jcmd GC.class_histogram`, before the load and once it had stopped) is what the broker really retains. ' +
      'Part of the early growth under either service is, most likely, the broker\'s request-latency histograms filling (`ConcurrentSkipListMap` nodes keyed by `Double`: ' +
      'Yammer\'s exponentially decaying samples, bounded at 1,028 entries each); that stops, the per-id state (`TransactionMetadata`, `ProducerStateEntry`) does not, ' +
      'so the longer the run, the closer the bytes per id come to the coordinator\'s and the partitions\' own cost. ' +
      'Every sample lists the ids with Kafka\'s TransactionsCommand and reads the heap with `jstat`, each a JVM start: both services pay that alike.',
    '',
    '![The broker over time, seed against gateway](growth.svg)',
    '',
  );
  for (const p of phases) {
    lines.push(
      `## ${p.label}`,
      '',
      'The ids column is the listing\'s answer, a few seconds after the row\'s time (it starts a JVM); req/s is since the previous row.',
      '',
      '| min | ids | heap used MiB | old gen MiB | broker RSS MiB | fds | threads | txn log MiB | service RSS MiB | req/s |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...p.samples.map(
        (x) =>
          `| ${fmt(x.minutes, 2)}${x.afterLoad ? ' (load over)' : ''} | ${fmt(x.transactionalIds)} | ${fmt(x.heapUsedMiB)} | ${fmt(x.oldGenMiB)} | ${fmt(x.brokerRssMiB)} | ${fmt(x.brokerFds)} | ${fmt(x.brokerThreads)} | ${fmt(x.transactionLogMiB, 1)} | ${fmt(x.serverRssMiB)} | ${fmt(x.requestsPerSec, 1)} |`,
      ),
      '',
    );
    if (p.liveHeap) {
      lines.push(
        `Live heap after a full GC: ${fmt(p.liveHeap.beforeMiB, 1)} MiB before the load, ${fmt(p.liveHeap.afterMiB, 1)} MiB after it. The classes that grew most:`,
        '',
        '| class | instances added | MiB added |',
        '|---|---:|---:|',
        ...p.liveHeap.grew.map((r) => `| \`${r.className}\` | ${fmt(r.instances)} | ${fmt(r.MiB, 2)} |`),
        '',
      );
    }
    if (p.producerStates) lines.push(`Producer ids with state per partition: ${p.producerStates.map((n) => fmt(n)).join(', ')}.`, '');
    for (const n of p.notes) lines.push(`Note: ${n}.`, '');
  }
  return lines.join('\n');
}

const METRICS: Array<[string, (s: Sample) => number, ((s: Sample) => number)?]> = [
  ['transactional ids on the coordinator', (s) => s.transactionalIds, (s) => s.idsMinutes],
  ['broker heap used, MiB', (s) => s.heapUsedMiB],
  ['broker old gen used, MiB', (s) => s.oldGenMiB],
  ['broker RSS, MiB', (s) => s.brokerRssMiB],
  ['broker open fds', (s) => s.brokerFds],
  ['__transaction_state on disk, MiB', (s) => s.transactionLogMiB],
  ['committed requests/s', (s) => s.requestsPerSec],
];

async function main(): Promise<void> {
  if (!(MINUTES > 0) || !(INTERVAL > 0) || !(CONNECTIONS > 0) || !(RECORDS > 0) || !(RATE >= 0)) throw new Error('--minutes, --interval, --connections and --records must be positive, --rate 0 or more');
  const java = await run('java', ['-version']).then(
    (r) => `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? 'unknown',
    () => 'unknown',
  );
  const info = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    java,
  };
  console.log(`# seed growth: ${MINUTES} min per service, ${RATE > 0 ? `${RATE} req/s` : 'closed loop'} over ${CONNECTIONS} connections, broker port ${PORT}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const started = new Date();
  const phases: Phase[] = [];
  for (const service of SERVICES) phases.push(await phase(service));
  mkdirSync(OUT, { recursive: true });
  writeFileSync(
    path.join(OUT, 'growth.json'),
    `${JSON.stringify({ minutes: MINUTES, rate: RATE, connections: CONNECTIONS, records: RECORDS, intervalSeconds: INTERVAL, startedAt: started.toISOString(), finishedAt: new Date().toISOString(), machine: info, phases }, null, 2)}\n`,
  );
  const rows: SeriesRow[] = phases.flatMap((p) =>
    p.samples.flatMap((s) => METRICS.map(([metric, value, at]) => ({ series: p.label, metric, minutes: at ? at(s) : s.minutes, value: value(s) }))),
  );
  writeFileSync(
    path.join(OUT, 'growth.svg'),
    await renderSvg(timeSeriesSpec(`The broker under ${MINUTES} min of the same load: seed against gateway`, rows, METRICS.map(([m]) => m))),
  );
  writeFileSync(path.join(OUT, 'growth.md'), `${markdown(phases, info)}\n`);
  console.log(`results: ${path.relative(process.cwd(), OUT) || '.'}/growth.{json,md,svg}`);
}

await main();
