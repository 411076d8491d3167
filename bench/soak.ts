/**
 * Soak: a steady keyed load on one gateway for a while, sampling what must stay flat once the
 * idempotency window is full: resident memory, heap, open file descriptors, event-loop delay,
 * pool slots, idempotency keys held, and the coordinator's count of our transactional ids. At the
 * end every request is checked as `txgate verify` does (no anomaly allowed).
 *
 *   npm run soak -- [--minutes 10] [--concurrency 64] [--retention-minutes 10] [--quick]
 *   npm run soak -- --render bench/results/soak/soak.json   # rewrite soak.md and soak.svg from the JSON (no run)
 *
 * --quick: 1 minute. The window is the gateway's idempotency retention (10 minutes at least), so
 * key counts rise for that long and then must level off: run longer than the retention to see it.
 * Writes bench/results/soak/soak.json, soak.md (samples, and each series' slope over the last
 * half of the run) and soak.svg (every series over time; bench/lib/soak-report.ts).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LocalKafka } from '../src/local-kafka/index.js';
import { ensureTopics } from '../src/local-kafka/topics.js';
import { checkLoad, runLoad, verdictLine } from '../src/verify/index.js';
import { listTransactions } from '../src/verify/transactions.js';
import { freePort, GatewayProcess } from '../test/support/gateway-process.js';
import { procStatusMiB } from '../test/support/proc.js';
import { renderSoakReport, writeSoakReport, type SoakSample } from './lib/soak-report.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    'retention-minutes': { type: 'string', default: '10' },
    'sample-seconds': { type: 'string', default: '5' },
    port: { type: 'string', default: '19692' },
    quick: { type: 'boolean', default: false },
    render: { type: 'string' },
  },
});
const minutes = values.quick ? 1 : Number(values.minutes);
const concurrency = Number(values.concurrency);
const retentionMs = Number(values['retention-minutes']) * 60_000;
const sampleMs = Number(values['sample-seconds']) * 1000;
const ID_PREFIX = 'txgate-soak';

type Sample = SoakSample;

/** The value of a metric family (summed over its series) in Prometheus text. */
function metric(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

function metricWhere(text: string, name: string, label: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(label)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'txgate-soak-'));
  const broker = new LocalKafka({ port: Number(values.port), stateDir });
  let gateway: GatewayProcess | undefined;
  try {
    console.error(`soak: starting a broker on 127.0.0.1:${values.port}`);
    const bootstrap = await broker.start();
    const topic = 'soak';
    await ensureTopics(bootstrap, [{ topic, partitions: 6 }]);
    gateway = new GatewayProcess({
      label: 'gateway',
      brokers: bootstrap,
      port: await freePort(),
      instanceId: 'soak',
      args: ['--transactional-id-prefix', ID_PREFIX, '--idempotency-retention-ms', String(retentionMs)],
    });
    await gateway.ready();
    const pid = gateway.pid!;
    console.error(`soak: ${minutes} min of keyed load at ${concurrency} clients; retention ${retentionMs / 60_000} min`);

    const samples: Sample[] = [];
    let acknowledged = 0;
    const started = Date.now();
    let lastIdCount = 0;
    const sample = async (withIds: boolean): Promise<void> => {
      const text = await (await fetch(`${gateway!.url}/metrics`)).text();
      const s: Sample = {
        atS: Math.round((Date.now() - started) / 1000),
        rssMiB: procStatusMiB(pid, 'VmRSS'),
        heapUsedMiB: metric(text, 'nodejs_heap_size_used_bytes') / 2 ** 20,
        openFds: readdirSync(`/proc/${pid}/fd`).length,
        eventLoopP99Ms: metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000,
        poolBusy: metric(text, 'txgate_pool_busy'),
        poolReplacing: metric(text, 'txgate_pool_replacing'),
        poolWaiting: metric(text, 'txgate_pool_waiting'),
        idempotencyKeys: metric(text, 'txgate_gateway_idempotency_keys'),
        acknowledged,
      };
      if (withIds) {
        lastIdCount = (await listTransactions(bootstrap)).filter((t) => t.transactionalId.startsWith(ID_PREFIX)).length;
        s.coordinatorIds = lastIdCount;
      }
      samples.push(s);
    };
    let ticks = 0;
    let sampling = Promise.resolve();
    const timer = setInterval(() => {
      const withIds = ticks++ % Math.max(1, Math.round(60_000 / sampleMs)) === 0;
      sampling = sampling.then(() => sample(withIds)).catch((err: unknown) => console.error(`soak: sampling failed: ${String(err)}`));
    }, sampleMs);
    const load = await runLoad({
      gateways: [gateway.url],
      topics: [topic],
      durationMs: minutes * 60_000,
      concurrency,
      keyPrefix: 'soak-',
      onProgress: (p) => (acknowledged = p.acknowledged),
      progressIntervalMs: 1_000,
    });
    clearInterval(timer);
    await sampling;
    await sample(true);
    const report = await checkLoad(load, { brokers: bootstrap, transactionalIdPrefix: ID_PREFIX });

    const half = samples.filter((s) => s.atS >= (minutes * 60) / 2);
    const perMinute = (key: keyof Sample): number => slope(half.filter((s) => s[key] !== undefined).map((s) => [s.atS / 60, Number(s[key])])) ;
    const slopes = {
      rssMiBPerMin: perMinute('rssMiB'),
      heapUsedMiBPerMin: perMinute('heapUsedMiB'),
      openFdsPerMin: perMinute('openFds'),
      eventLoopP99MsPerMin: perMinute('eventLoopP99Ms'),
      idempotencyKeysPerMin: perMinute('idempotencyKeys'),
      coordinatorIdsPerMin: perMinute('coordinatorIds'),
    };
    const out = path.join(path.dirname(new URL(import.meta.url).pathname), 'results', 'soak');
    mkdirSync(out, { recursive: true });
    const machine = { cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadAvg: os.loadavg() };
    const files = await writeSoakReport(out, { minutes, concurrency, retentionMs, machine, verdict: verdictLine(report), stats: load.stats, slopes, samples });
    console.log(verdictLine(report));
    console.log(`soak: slopes over the second half (per minute): ${JSON.stringify(slopes)}`);
    console.log(`soak: report in ${Object.values(files).map((f) => path.relative(process.cwd(), f)).join(', ')}`);
    process.exitCode = report.verdict === 'OK' ? 0 : 1;
  } finally {
    await gateway?.kill('SIGTERM').catch(() => {});
    await broker.stop().catch(() => {});
    rmSync(stateDir, { recursive: true, force: true });
  }
}

if (values.render) {
  const files = await renderSoakReport(values.render);
  console.log(`soak: wrote ${Object.values(files).map((f) => path.relative(process.cwd(), f)).join(', ')}`);
} else {
  await main();
}
