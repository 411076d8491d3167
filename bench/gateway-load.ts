/**
 * The HTTP gateway under load: `txgate serve` runs as its own process (so the load generator does
 * not share its event loop) and autocannon drives POST /v1/transactions at several connection
 * counts, without and with an Idempotency-Key. For each run it prints throughput, latency
 * percentiles, failures, requests per Kafka transaction (group commit, from /metrics), and the
 * gateway's peak RSS and CPU. After the load it reads the topic with a read_committed consumer and
 * checks that every 2xx-acknowledged request's records are in Kafka exactly once.
 *
 *   npm run bench:gateway                              # starts its own local broker
 *   TXGATE_BROKERS=host:9092 npm run bench:gateway     # or uses yours
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=1,16,64,256 BENCH_POOL_SIZE=8 BENCH_RECORDS=1 npm run bench:gateway
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { LocalKafka, ensureTopics } from '../src/local-kafka/index.js';
import { freePort, GatewayProcess } from '../test/support/gateway-process.js';
import { autocannon, type AutocannonResult, type AutocannonRun } from './lib/autocannon.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const DURATION = env('BENCH_DURATION', 10);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '1,16,64,256').split(',').map((s) => Number(s.trim()));
const POOL_SIZE = env('BENCH_POOL_SIZE', 8);
const RECORDS = env('BENCH_RECORDS', 1);
const WARMUP = env('BENCH_WARMUP', 2);
const VALUE_BYTES = 256;


interface Run {
  label: string;
  mode: 'no key' | 'with key';
  connections: number;
  result: AutocannonResult;
  /** Request ids answered 2xx. */
  acked: Set<string>;
  /** From /metrics: requests committed and pool transactions by outcome during the run. */
  committedRequests: number;
  committedTx: number;
  abortedTx: number;
  peakRssMiB: number;
  gatewayCpu: number;
  loadgenCpu: number;
}

// ---------------------------------------------------------------------------------------------
// The gateway as a child process

/** `txgate serve` in its own process, its output echoed on stderr; resolves once it is ready. */
async function startGateway(bootstrap: string, runId: string): Promise<GatewayProcess> {
  const gateway = new GatewayProcess({
    label: 'gateway',
    brokers: bootstrap,
    port: await freePort(),
    instanceId: 'bench',
    // Own transactional ids: never fences a gateway that runs on the same cluster.
    args: ['--pool-size', String(POOL_SIZE), '--transactional-id-prefix', `bench-gw-${runId}`],
    // This process's environment, as `npm run bench:gateway` sets it (UV_THREADPOOL_SIZE=128).
    env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)),
    onLine: (line) => process.stderr.write(`[gateway] ${line}\n`),
  });
  try {
    await gateway.ready(90_000);
  } catch (err) {
    await gateway.stop();
    throw err;
  }
  return gateway;
}

async function scrapeMetrics(gateway: GatewayProcess): Promise<string> {
  const res = await fetch(`${gateway.url}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}

/** One sample's value from Prometheus text, e.g. metric(text, 'x_total', 'outcome="committed"'); 0 when absent. */
function metric(text: string, name: string, labels = ''): number {
  const prefix = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(prefix.length).split(' ')[0]) : 0;
}

/** Polls /metrics until nothing is in flight: requests cut off when autocannon stopped still finish their transactions. */
async function waitIdle(gateway: GatewayProcess): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const text = await scrapeMetrics(gateway);
    if (metric(text, 'txgate_gateway_pending_requests') === 0 && metric(text, 'txgate_pool_busy') === 0) return text;
    if (Date.now() > deadline) throw new Error('the gateway still has requests in flight 60 s after the run ended');
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// Load

const VALUE_BASE64 = Buffer.alloc(VALUE_BYTES, 'x').toString('base64');
const NONCE = randomBytes(4).toString('hex');

/** Each request carries RECORDS records keyed `<request id>.<index>`, so Kafka can be checked per request. */
function requestBody(topic: string, id: string): string {
  const records: string[] = [];
  for (let r = 0; r < RECORDS; r++) records.push(`{"topic":"${topic}","key":"${id}.${r}","valueBase64":"${VALUE_BASE64}"}`);
  return `{"records":[${records.join(',')}]}`;
}

let current: AutocannonRun | undefined;
let interrupted = false;

async function load(gateway: GatewayProcess, topic: string, label: string, connections: number, seconds: number, withKey: boolean) {
  const acked = new Set<string>();
  let seq = 0;
  const run = autocannon({
    url: gateway.url,
    connections,
    duration: seconds,
    timeout: 30,
    requests: [
      {
        method: 'POST',
        path: '/v1/transactions',
        setupRequest(request, context) {
          const id = `${NONCE}.${label}.${seq++}`;
          context.id = id;
          const headers: Record<string, string> = { ...request.headers, 'content-type': 'application/json' };
          if (withKey) headers['idempotency-key'] = `bench-${id}`;
          return { ...request, headers, body: requestBody(topic, id) };
        },
        onResponse(status, _body, context) {
          if (status >= 200 && status < 300) acked.add(context.id as string);
        },
      },
    ],
  });
  current = run;
  const result = await run;
  current = undefined;
  return { result, acked };
}

async function measure(gateway: GatewayProcess, topic: string, mode: Run['mode'], connections: number): Promise<Run> {
  const label = `${mode === 'with key' ? 'k' : 'n'}${connections}`;
  const before = await waitIdle(gateway);
  const cpu0 = gateway.cpuSeconds();
  const loadgen0 = process.cpuUsage();
  const started = performance.now();
  let peak = gateway.memory().rssMiB;
  const sampler = setInterval(() => (peak = Math.max(peak, gateway.memory().rssMiB)), 100);
  const { result, acked } = await load(gateway, topic, label, connections, DURATION, mode === 'with key');
  clearInterval(sampler);
  const wall = (performance.now() - started) / 1000;
  const cpu = (gateway.cpuSeconds() - cpu0) / wall;
  const loadgen = process.cpuUsage(loadgen0);
  const after = await waitIdle(gateway);
  const delta = (name: string, labels = '') => metric(after, name, labels) - metric(before, name, labels);
  return {
    label,
    mode,
    connections,
    result,
    acked,
    committedRequests: delta('txgate_gateway_requests_total'),
    committedTx: delta('txgate_pool_transactions_total', 'outcome="committed"'),
    abortedTx: delta('txgate_pool_transactions_total', 'outcome="aborted"') + delta('txgate_pool_transactions_total', 'outcome="unknown"'),
    peakRssMiB: peak,
    gatewayCpu: cpu,
    loadgenCpu: (loadgen.user + loadgen.system) / 1e6 / wall,
  };
}

const perTx = (r: Run) => (r.committedTx > 0 ? r.committedRequests / r.committedTx : NaN);
const rate = (r: Run) => r.result['2xx'] / r.result.duration;

function nonOkDetail(r: Run): string {
  const codes = Object.entries(r.result.statusCodeStats).filter(([code]) => !code.startsWith('2'));
  return codes.length === 0 ? '' : ` (${codes.map(([code, s]) => `${code}: ${s.count}`).join(', ')})`;
}

function report(r: Run): string {
  return [
    `${r.mode.padEnd(8)} ${String(r.connections).padStart(4)} conn`,
    `${rate(r).toFixed(1).padStart(8)} req/s`,
    `p50 ${r.result.latency.p50.toFixed(1).padStart(7)} ms`,
    `p99 ${r.result.latency.p99.toFixed(1).padStart(7)} ms`,
    `2xx ${String(r.result['2xx']).padStart(6)}`,
    `non-2xx ${r.result.non2xx}${nonOkDetail(r)}`,
    `errors ${r.result.errors}`,
    `req/tx ${perTx(r).toFixed(2).padStart(6)}`,
    `gw peak RSS ${r.peakRssMiB.toFixed(0).padStart(4)} MiB`,
    `gw CPU ${(r.gatewayCpu * 100).toFixed(0).padStart(3)}%`,
    `loadgen CPU ${(r.loadgenCpu * 100).toFixed(0).padStart(3)}%`,
  ].join('  ');
}

// ---------------------------------------------------------------------------------------------
// Verification: read the topic to its end, read_committed

/** Every record key in the topic with how often it occurs, read from the beginning to the last stable offsets. */
async function readKeys(bootstrap: string, topic: string, timeoutMs = 120_000): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': bootstrap, 'client.id': 'txgate-bench-reader' });
  let ends: Map<number, number>;
  try {
    const [described] = await new Promise<RdKafka.TopicDescription[]>((resolve, reject) =>
      admin.describeTopics([topic], { timeout: 30_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    const partitions = described!.partitions.map((p) => p.partition);
    const offsets = await new Promise<RdKafka.ListOffsetsResult[]>((resolve, reject) =>
      admin.listOffsets(
        partitions.map((partition) => ({ topic, partition, offset: RdKafka.OffsetSpec.LATEST })),
        { timeout: 30_000, isolationLevel: RdKafka.IsolationLevel.READ_COMMITTED },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
    ends = new Map(offsets.map((o) => [o.partition, o.offset]));
  } finally {
    admin.disconnect();
  }

  const consumer = new RdKafka.KafkaConsumer(
    {
      'bootstrap.servers': bootstrap,
      'group.id': `txgate-bench-reader-${NONCE}`,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
      'auto.offset.reset': 'earliest',
      'fetch.wait.max.ms': 50,
    },
    {},
  );
  const reached = new Map<number, number>();
  consumer.on('partition.eof', (e) => reached.set(e.partition, Math.max(e.offset, reached.get(e.partition) ?? -1)));
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  const keys = new Map<string, number>();
  try {
    consumer.setDefaultConsumeTimeout(100);
    consumer.assign([...ends.keys()].map((partition) => ({ topic, partition, offset: -2 /* beginning */ })));
    const done = () => [...ends].every(([p, end]) => (reached.get(p) ?? -1) >= end);
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`reading ${topic} did not reach its end within ${timeoutMs} ms`);
      const batch = await new Promise<RdKafka.Message[]>((resolve, reject) => consumer.consume(5000, (err, msgs) => (err ? reject(err) : resolve(msgs))));
      for (const m of batch) {
        const key = m.key == null ? '' : m.key.toString();
        keys.set(key, (keys.get(key) ?? 0) + 1);
      }
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
  return keys;
}

interface Check {
  label: string;
  acked: number;
  kafkaRecords: number;
  /** Acknowledged requests with a record missing. */
  missing: number;
  /** Record keys seen more than once. */
  duplicates: number;
  /** Requests committed whose 2xx never reached the client (cut off when the run ended, or timed out). */
  committedUnacked: number;
  committedRequests: number;
}

function check(keys: Map<string, number>, runs: Array<{ label: string; acked: Set<string>; committedRequests: number }>): Check[] {
  const byRun = new Map<string, Map<string, number[]>>();
  for (const [key, count] of keys) {
    const [nonce, label, seq, index] = key.split('.');
    if (nonce !== NONCE || label === undefined || seq === undefined || index === undefined) continue;
    const requests = byRun.get(label) ?? byRun.set(label, new Map()).get(label)!;
    const id = `${nonce}.${label}.${seq}`;
    const counts = requests.get(id) ?? requests.set(id, new Array<number>(RECORDS).fill(0)).get(id)!;
    counts[Number(index)] = (counts[Number(index)] ?? 0) + count;
  }
  return runs.map((run) => {
    const requests = byRun.get(run.label) ?? new Map<string, number[]>();
    let kafkaRecords = 0;
    let duplicates = 0;
    let committedUnacked = 0;
    for (const [id, counts] of requests) {
      for (const c of counts) {
        kafkaRecords += c;
        if (c > 1) duplicates++;
      }
      if (!run.acked.has(id)) committedUnacked++;
    }
    let missing = 0;
    for (const id of run.acked) {
      const counts = requests.get(id);
      if (!counts || counts.some((c) => c < 1)) missing++;
    }
    return { label: run.label, acked: run.acked.size, kafkaRecords, missing, duplicates, committedUnacked, committedRequests: run.committedRequests };
  });
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  let local: LocalKafka | undefined;
  let stateDir: string | undefined;
  let gateway: GatewayProcess | undefined;
  let bootstrap = process.env.TXGATE_BROKERS;
  process.on('SIGINT', () => {
    interrupted = true;
    current?.stop();
  });
  try {
    if (!bootstrap) {
      stateDir = mkdtempSync(path.join(os.tmpdir(), 'txgate-bench-gateway-'));
      local = new LocalKafka({ port: env('BENCH_KAFKA_PORT', 19492), stateDir });
      bootstrap = await local.start();
    }
    const runId = `${Date.now()}`;
    const topic = `bench-gateway-${runId}`;
    await ensureTopics(bootstrap, [{ topic, partitions: 6 }]);
    gateway = await startGateway(bootstrap, runId);
    console.log(
      `# txgate gateway bench: ${DURATION} s per run at ${CONNECTIONS.join(', ')} connections, ${RECORDS} x ${VALUE_BYTES} B records per request, ` +
        `pool size ${POOL_SIZE}, gateway pid ${gateway.pid} (own process, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 64}), broker ${bootstrap}, ` +
        `${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} before the start`,
    );

    // Not reported: first connections, topic metadata, JIT. Its records are still verified.
    const warmup = await load(gateway, topic, 'warmup', 16, WARMUP, false);
    const warmupMetrics = await waitIdle(gateway);

    const runs: Run[] = [];
    for (const mode of ['no key', 'with key'] as const) {
      for (const connections of CONNECTIONS) {
        if (interrupted) break;
        const run = await measure(gateway, topic, mode, connections);
        runs.push(run);
        console.log(report(run));
      }
    }

    const gatewayStats = await scrapeMetrics(gateway);
    const { hwmMiB } = gateway.memory();
    const { code: exitCode } = await gateway.stop();
    gateway = undefined;

    console.log('');
    console.log('mode       conns     req/s   p50 ms   p99 ms      2xx  non-2xx  errors  req/tx  gw peak RSS MiB  gw CPU  loadgen CPU');
    for (const r of runs) {
      console.log(
        `${r.mode.padEnd(9)} ${String(r.connections).padStart(6)} ${rate(r).toFixed(1).padStart(9)} ${r.result.latency.p50.toFixed(1).padStart(8)} ` +
          `${r.result.latency.p99.toFixed(1).padStart(8)} ${String(r.result['2xx']).padStart(8)} ${String(r.result.non2xx).padStart(8)} ` +
          `${String(r.result.errors).padStart(7)} ${perTx(r).toFixed(2).padStart(7)} ${r.peakRssMiB.toFixed(0).padStart(16)} ` +
          `${(r.gatewayCpu * 100).toFixed(0).padStart(6)}% ${(r.loadgenCpu * 100).toFixed(0).padStart(11)}%`,
      );
    }
    console.log(
      `gateway: exited with code ${exitCode} after a graceful drain, VmHWM ${hwmMiB.toFixed(0)} MiB, ` +
        `pool transactions aborted ${metric(gatewayStats, 'txgate_pool_transactions_total', 'outcome="aborted"')}, ` +
        `unknown ${metric(gatewayStats, 'txgate_pool_transactions_total', 'outcome="unknown"')}, ` +
        `producers replaced ${gatewayStats.split('\n').filter((l) => l.startsWith('txgate_pool_replacements_total')).reduce((n, l) => n + Number(l.split(' ').pop()), 0)}`,
    );

    console.log('');
    console.log(`# verification: read_committed read of ${topic} after the gateway stopped`);
    const keys = await readKeys(bootstrap, topic);
    const checks = check(keys, [{ label: 'warmup', acked: warmup.acked, committedRequests: metric(warmupMetrics, 'txgate_gateway_requests_total') }, ...runs]);
    let failed = false;
    for (const c of checks) {
      const ok = c.missing === 0 && c.duplicates === 0 && c.kafkaRecords === c.committedRequests * RECORDS;
      failed ||= !ok;
      const cut = c.committedUnacked > 0 ? ` (${c.committedUnacked} of them committed but cut off before the client read the response, when the run ended)` : '';
      console.log(
        `${c.label.padEnd(7)} ${ok ? 'ok    ' : 'FAILED'} 2xx ${c.acked} x ${RECORDS} = ${c.acked * RECORDS} records, missing ${c.missing}, duplicated ${c.duplicates}; ` +
          `in Kafka ${c.kafkaRecords}, gateway committed ${c.committedRequests} requests x ${RECORDS} = ${c.committedRequests * RECORDS}${cut}`,
      );
    }
    const total = checks.reduce((n, c) => n + c.kafkaRecords, 0);
    console.log(`${failed ? 'FAILED' : 'ok'}: ${total} records in Kafka; every 2xx-acknowledged request's records are there exactly once${failed ? ' -- NOT for the runs above marked FAILED' : ''}`);
    if (failed) process.exitCode = 1;

    const top = Math.max(...runs.map((r) => r.connections));
    const bottom = Math.min(...runs.map((r) => r.connections));
    const at = (mode: Run['mode'], c: number) => runs.find((r) => r.mode === mode && r.connections === c);
    console.log('');
    for (const mode of ['no key', 'with key'] as const) {
      const hi = at(mode, top);
      const lo = at(mode, bottom);
      if (!hi || !lo) continue;
      console.log(
        `group commit (${mode}): ${perTx(hi).toFixed(1)} requests per Kafka transaction at ${top} connections vs ${perTx(lo).toFixed(2)} at ${bottom}; ` +
          `throughput x${(rate(hi) / rate(lo)).toFixed(1)} (${rate(hi).toFixed(0)} vs ${rate(lo).toFixed(0)} req/s), p50 latency ${hi.result.latency.p50.toFixed(0)} vs ${lo.result.latency.p50.toFixed(0)} ms`,
      );
    }
    const hiNo = at('no key', top);
    const hiKey = at('with key', top);
    if (hiNo && hiKey) console.log(`idempotency key cost at ${top} connections: throughput x${(rate(hiKey) / rate(hiNo)).toFixed(2)}, p99 ${hiKey.result.latency.p99.toFixed(0)} vs ${hiNo.result.latency.p99.toFixed(0)} ms`);
  } finally {
    if (gateway) await gateway.stop();
    if (local) await local.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
