/**
 * Idempotency keys at scale: what a gateway costs with N retained keys, against an empty window.
 * It fills an idempotency topic with N keys as the gateway writes them (a claim and an outcome
 * record per key, in the key's murmur2 partition; a plain idempotent producer writes them), then
 * starts `txgate serve` (its own process) on it and on an empty idempotency topic, and for each
 * measures: the time from the process's start to /readyz 200 (loading the keys), its RSS and peak
 * RSS (VmRSS, VmHWM), and keyed throughput at 256 connections (new keys, one 256 B record each,
 * autocannon; both gateways stay up and their runs alternate). On the full topic it also replays
 * keys committed long before (their outcomes are read back from Kafka), twice (the second time
 * from memory).
 *
 *   npm run bench:idempotency                         # 10,000,000 keys, own local broker
 *   npm run bench:idempotency -- --keys 1000000
 *   npm run bench:idempotency -- --keys 1000000 --breakdown
 *       also reads the topic in this process as the gateway does, without and with the view, and
 *       times summarizing, parsing and hashing on a sample: where loading time goes
 *   npm run bench:idempotency -- --keys 1000000 --other-root /tmp/txgate-head
 *       also starts the gateway of another checkout (e.g. the previous commit, with node_modules
 *       linked in) on both topics: its start-up time and bytes per key, no load
 *   TXGATE_BROKERS=host:9092 ... uses that cluster instead of a local broker
 *   BENCH_DURATION (10 s per load run), BENCH_ROUNDS (2 runs each), BENCH_CONNECTIONS (256),
 *   BENCH_POOL_SIZE (8), BENCH_KAFKA_PORT (19492)
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { requestFingerprint } from '../src/gateway/http/fingerprint.js';
import { partitionForKey } from '../src/gateway/idempotency/partitioner.js';
import { hashKey } from '../src/gateway/idempotency/key-hash.js';
import { decodeRecord, encodeClaim, encodeOutcome, summarizeRecord } from '../src/gateway/idempotency/record-format.js';
import { DEFAULT_IDEMPOTENCY_RETENTION_MS } from '../src/gateway/defaults.js';
import { topicRetentionConfig } from '../src/gateway/idempotency/retention.js';
import { IdempotencyView } from '../src/gateway/idempotency/view.js';
import { LocalKafka, ensureTopics } from '../src/local-kafka/index.js';
import { freePort, GatewayProcess } from '../test/support/gateway-process.js';
import { autocannon, type AutocannonResult } from './lib/autocannon.js';

const REPO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000000' },
    'other-root': { type: 'string' },
    breakdown: { type: 'boolean', default: false },
  },
});
const KEYS = Number(flags.keys);
if (!Number.isSafeInteger(KEYS) || KEYS < 1) throw new Error(`--keys must be a positive integer, got ${flags.keys}`);
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const DURATION = env('BENCH_DURATION', 10);
const CONNECTIONS = env('BENCH_CONNECTIONS', 256);
const POOL_SIZE = env('BENCH_POOL_SIZE', 8);
const IDEMPOTENCY_PARTITIONS = 3; // the gateway's default when it creates the topic
const DATA_PARTITIONS = 6;
const ROUNDS = env('BENCH_ROUNDS', 2);
const REPLAYS = 200;
const VALUE_BASE64 = Buffer.alloc(256, 'x').toString('base64');
const NONCE = randomBytes(4).toString('hex');
const MiB = 1024 * 1024;


// ---------------------------------------------------------------------------------------------
// Filling the idempotency topic

const FILL_FP_PREFIX = randomBytes(24).toString('hex');
const fillKey = (i: number) => `bench-${NONCE}-${String(i).padStart(22, '0')}`;
/** The request body of the keys that are replayed later: its fingerprint must be the real one. */
const replayBody = (dataTopic: string, i: number) => `{"records":[{"topic":"${dataTopic}","key":"replay-${i}","valueBase64":"${VALUE_BASE64}"}]}`;

/** The claim and outcome records of key i, exactly as encodeClaim / encodeOutcome write them (without their cost). */
function fillRecords(i: number, dataTopic: string, at: string, fingerprint: string): [Buffer, Buffer] {
  return [
    Buffer.from(`{"pending":true,"fingerprint":"${fingerprint}","claimedAt":"${at}"}`),
    Buffer.from(`{"fingerprint":"${fingerprint}","records":[{"topic":"${dataTopic}","partition":${i % DATA_PARTITIONS},"offset":"${1_000_000 + i}"}],"committedAt":"${at}"}`),
  ];
}

async function fill(bootstrap: string, topic: string, dataTopic: string, keys: number): Promise<number> {
  const at = new Date().toISOString();
  const fingerprintOf = (i: number) =>
    i < REPLAYS ? requestFingerprint(JSON.parse(replayBody(dataTopic, i))) : FILL_FP_PREFIX + i.toString(16).padStart(16, '0');
  // The shortcut writes what the gateway would.
  const [claim, outcome] = fillRecords(7, dataTopic, at, fingerprintOf(7));
  if (!claim.equals(encodeClaim({ pending: true, fingerprint: fingerprintOf(7), claimedAt: at }))) throw new Error('fill: claim layout differs');
  const expected = encodeOutcome({ fingerprint: fingerprintOf(7), records: [{ topic: dataTopic, partition: 7 % DATA_PARTITIONS, offset: String(1_000_007) }], committedAt: at });
  if (!outcome.equals(expected)) throw new Error('fill: outcome layout differs');

  const producer = new RdKafka.Producer({
    'bootstrap.servers': bootstrap,
    'enable.idempotence': true,
    'linger.ms': 50,
    'batch.num.messages': 10_000,
    'queue.buffering.max.messages': 500_000,
    'queue.buffering.max.kbytes': 1_048_576,
  });
  await new Promise<void>((resolve, reject) => producer.connect({}, (err) => (err ? reject(err) : resolve())));
  producer.setPollInterval(50);
  const started = performance.now();
  for (let i = 0; i < keys; i++) {
    const key = Buffer.from(fillKey(i));
    const partition = partitionForKey(fillKey(i), IDEMPOTENCY_PARTITIONS);
    for (const value of fillRecords(i, dataTopic, at, fingerprintOf(i))) {
      for (;;) {
        try {
          producer.produce(topic, partition, value, key);
          break;
        } catch (err) {
          if ((err as { code?: number }).code !== RdKafka.CODES.ERRORS.ERR__QUEUE_FULL) throw err;
          await new Promise((r) => setTimeout(r, 20)); // the client's queue is full: let it send
        }
      }
    }
    if (i > 0 && i % 1_000_000 === 0) process.stderr.write(`  filled ${i / 1e6}M keys in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }
  await new Promise<void>((resolve, reject) => producer.flush(600_000, (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  return (performance.now() - started) / 1000;
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface Started {
  label: string;
  gateway: GatewayProcess;
  startupS: number;
  atReady: { rssMiB: number; hwmMiB: number };
}

interface Latencies {
  replayed: number;
  p50: number;
  p99: number;
}

/** `txgate serve` of the checkout `root` in its own process, on `topic` as its idempotency topic, until it is ready. */
async function startGateway(root: string, bootstrap: string, topic: string, label: string): Promise<Started> {
  process.stderr.write(`${label}: starting the gateway\n`);
  const gateway = new GatewayProcess({
    label,
    root,
    brokers: bootstrap,
    port: await freePort(),
    instanceId: 'bench',
    args: [
      '--pool-size', String(POOL_SIZE),
      '--idempotency-topic', topic,
      '--transactional-id-prefix', `bench-idem-${NONCE}-${label.replace(/[^A-Za-z0-9._-]+/g, '-')}`,
    ],
    // Only the start-up deadline, long enough for millions of keys (a checkout without that setting ignores it).
    env: { TXGATE_START_TIMEOUT_MS: '900000' },
  });
  try {
    const startupS = (await gateway.ready(900_000, 100)) / 1000;
    const atReady = gateway.memory();
    process.stderr.write(`${label}: ready after ${startupS.toFixed(1)} s, RSS ${atReady.rssMiB.toFixed(0)} MiB (peak ${atReady.hwmMiB.toFixed(0)})\n`);
    return { label, gateway, startupS, atReady };
  } catch (err) {
    await gateway.stop();
    throw err;
  }
}

async function keyedLoad(gateway: GatewayProcess, dataTopic: string, label: string, connections: number, seconds: number): Promise<AutocannonResult> {
  let seq = 0;
  return autocannon({
    url: gateway.url,
    connections,
    duration: seconds,
    timeout: 30,
    requests: [
      {
        method: 'POST',
        path: '/v1/transactions',
        setupRequest(request) {
          const id = `${NONCE}.${label}.${seq++}`;
          return {
            ...request,
            headers: { 'content-type': 'application/json', 'idempotency-key': `load-${id}` },
            body: `{"records":[{"topic":"${dataTopic}","key":"${id}","valueBase64":"${VALUE_BASE64}"}]}`,
          };
        },
      },
    ],
  });
}

/** Replays the first REPLAYS filled keys one at a time: their outcomes are among the oldest, read back from Kafka. */
async function replayOld(gateway: GatewayProcess, dataTopic: string): Promise<Latencies> {
  const took: number[] = [];
  let replayed = 0;
  for (let i = 0; i < REPLAYS; i++) {
    const started = performance.now();
    const res = await fetch(`${gateway.url}/v1/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': fillKey(i) },
      body: replayBody(dataTopic, i),
    });
    const body = (await res.json()) as { records?: Array<{ offset: string }> };
    took.push(performance.now() - started);
    if (res.status === 200 && res.headers.get('idempotent-replayed') === 'true' && body.records?.[0]?.offset === String(1_000_000 + i)) replayed++;
  }
  took.sort((a, b) => a - b);
  return { replayed, p50: took[Math.floor(took.length / 2)]!, p99: took[Math.floor(took.length * 0.99)]! };
}

const rate = (r: AutocannonResult) => r['2xx'] / r.duration;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---------------------------------------------------------------------------------------------
// Where loading time goes (--breakdown): the topic read in this process as the store reads it

async function readAll(bootstrap: string, topic: string, apply: (m: RdKafka.Message, key: string | undefined) => void): Promise<number> {
  const consumer = new RdKafka.KafkaConsumer(
    {
      'bootstrap.servers': bootstrap,
      'group.id': `bench-idem-breakdown-${NONCE}-${Math.random()}`,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
      'fetch.wait.max.ms': 100,
      'fetch.queue.backoff.ms': 10, // as the store's consumers
      'max.partition.fetch.bytes': 8 * MiB,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  const ends = new Set<number>();
  consumer.on('partition.eof', (e) => ends.add(e.partition));
  consumer.setDefaultConsumeTimeout(250);
  (consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
  const started = performance.now();
  consumer.assign(Array.from({ length: IDEMPOTENCY_PARTITIONS }, (_, partition) => ({ topic, partition, offset: -2 })));
  for (;;) {
    const batch = await new Promise<RdKafka.Message[]>((resolve, reject) => consumer.consume(1000, (err, msgs) => (err ? reject(err) : resolve(msgs))));
    for (const m of batch) apply(m, m.key == null ? undefined : Buffer.isBuffer(m.key) ? m.key.toString('utf8') : String(m.key));
    if (batch.length === 0 && ends.size === IDEMPOTENCY_PARTITIONS) break;
  }
  const seconds = (performance.now() - started) / 1000;
  await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  return seconds;
}

async function breakdown(bootstrap: string, topic: string): Promise<string[]> {
  const sample: Array<{ key: string; value: Buffer }> = [];
  const consumeOnly = await readAll(bootstrap, topic, (m, key) => {
    if (sample.length < 1_000_000 && key !== undefined && m.value) sample.push({ key, value: m.value });
  });
  const view = new IdempotencyView(IDEMPOTENCY_PARTITIONS, {}, { retentionMs: DEFAULT_IDEMPOTENCY_RETENTION_MS, recentOutcomes: { maxOutcomes: 0 } });
  const withView = await readAll(bootstrap, topic, (m, key) => view.applyCommitted(m.partition, m.offset, key, m.value));
  const time = (work: () => void) => {
    const t = performance.now();
    work();
    return ((performance.now() - t) * 1000) / sample.length;
  };
  const out = new Uint32Array(4);
  const summarize = time(() => sample.forEach((r) => summarizeRecord(r.value)));
  const parse = time(() => sample.forEach((r) => decodeRecord(r.value)));
  const hash = time(() => sample.forEach((r) => hashKey(r.key, out)));
  const records = 2 * KEYS;
  return [
    `loading ${records} records in this process, as the store reads them: consuming only ${consumeOnly.toFixed(1)} s (${((consumeOnly * 1e6) / records).toFixed(2)} µs a record); ` +
      `consuming into the view ${withView.toFixed(1)} s (${((withView * 1e6) / records).toFixed(2)} µs a record; ${view.size} keys, index ${(view.indexBytes / MiB).toFixed(0)} MiB)`,
    `per record, on ${sample.length} records in memory: summarize ${summarize.toFixed(3)} µs (JSON.parse instead: ${parse.toFixed(3)} µs), hash the key ${hash.toFixed(3)} µs`,
  ];
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  let local: LocalKafka | undefined;
  let stateDir: string | undefined;
  let bootstrap = process.env.TXGATE_BROKERS;
  const started: Started[] = [];
  try {
    if (!bootstrap) {
      stateDir = mkdtempSync(path.join(os.tmpdir(), 'txgate-bench-idempotency-'));
      local = new LocalKafka({ port: env('BENCH_KAFKA_PORT', 19492), stateDir });
      bootstrap = await local.start();
    }
    const dataTopic = `bench-idem-data-${NONCE}`;
    const emptyTopic = `bench-idem-empty-${NONCE}`;
    const fullTopic = `bench-idem-full-${NONCE}`;
    const config = topicRetentionConfig(DEFAULT_IDEMPOTENCY_RETENTION_MS);
    await ensureTopics(bootstrap, [
      { topic: dataTopic, partitions: DATA_PARTITIONS },
      { topic: emptyTopic, partitions: IDEMPOTENCY_PARTITIONS, config },
      { topic: fullTopic, partitions: IDEMPOTENCY_PARTITIONS, config },
    ]);
    process.stderr.write(`filling ${fullTopic} with ${KEYS} keys\n`);
    const fillS = await fill(bootstrap, fullTopic, dataTopic, KEYS);
    process.stderr.write(`filled in ${fillS.toFixed(0)} s\n`);
    const breakdownLines = flags.breakdown ? await breakdown(bootstrap, fullTopic) : [];

    // Other checkouts first, one at a time (their memory is all that is measured).
    const other = flags['other-root'];
    const others: Started[] = [];
    if (other) {
      for (const [topic, label] of [[emptyTopic, 'other checkout, empty'], [fullTopic, 'other checkout, full']] as const) {
        const s = await startGateway(path.resolve(other), bootstrap, topic, label);
        others.push(s);
        await s.gateway.stop();
      }
    }

    // Both gateways stay up, and their load runs alternate, so that the machine's other work
    // weighs on both alike.
    const empty = await startGateway(REPO, bootstrap, emptyTopic, 'empty');
    started.push(empty);
    const full = await startGateway(REPO, bootstrap, fullTopic, `${KEYS.toLocaleString('en')} keys`);
    started.push(full);
    const replays = { fromKafka: await replayOld(full.gateway, dataTopic), fromMemory: await replayOld(full.gateway, dataTopic) };
    for (const s of started) await keyedLoad(s.gateway, dataTopic, `${s.label.replace(/\W+/g, '')}-warmup`, 16, 2); // first connections, JIT
    const loads = new Map<Started, AutocannonResult[]>(started.map((s) => [s, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of round % 2 === 0 ? started : [...started].reverse()) {
        const result = await keyedLoad(s.gateway, dataTopic, `${s.label.replace(/\W+/g, '')}-${round}`, CONNECTIONS, DURATION);
        loads.get(s)!.push(result);
        process.stderr.write(`${s.label}: ${rate(result).toFixed(0)} req/s, p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}, errors ${result.errors}\n`);
      }
    }
    const after = new Map(started.map((s) => [s, s.gateway.memory()]));

    const perKey = (e: Started, f: Started) => ((f.atReady.rssMiB - e.atReady.rssMiB) * MiB) / KEYS;
    console.log('');
    console.log(
      `# txgate idempotency keys at scale: ${KEYS.toLocaleString('en')} keys (${2 * KEYS} records) filled in ${fillS.toFixed(0)} s; ` +
        `broker ${bootstrap}; ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    for (const line of breakdownLines) console.log(line);
    console.log(`run                         start-up s   RSS MiB  peak MiB   keyed req/s at ${CONNECTIONS} conn (each run)   p99 ms   non-2xx  RSS / peak after`);
    for (const s of [...others, ...started]) {
      const runs = loads.get(s);
      const mem = after.get(s);
      console.log(
        `${s.label.padEnd(27)} ${s.startupS.toFixed(1).padStart(10)} ${s.atReady.rssMiB.toFixed(0).padStart(9)} ${s.atReady.hwmMiB.toFixed(0).padStart(9)} ` +
          (runs
            ? `${runs.map((r) => rate(r).toFixed(0)).join(', ').padStart(36)} ${median(runs.map((r) => r.latency.p99)).toFixed(0).padStart(8)} ` +
              `${String(runs.reduce((n, r) => n + r.non2xx + r.errors, 0)).padStart(9)}  ${mem!.rssMiB.toFixed(0)} / ${mem!.hwmMiB.toFixed(0)}`
            : '(no load)'),
      );
    }
    console.log('');
    console.log(`bytes per key: ${perKey(empty, full).toFixed(0)} ((RSS with the keys - RSS empty) / keys, both at ready)`);
    console.log(`start-up with the keys: ${full.startupS.toFixed(1)} s (empty: ${empty.startupS.toFixed(1)} s); peak RSS ${after.get(full)!.hwmMiB.toFixed(0)} MiB`);
    const mean = (s: Started) => loads.get(s)!.reduce((n, r) => n + rate(r), 0) / ROUNDS;
    console.log(`keyed throughput at ${CONNECTIONS} connections (mean of ${ROUNDS}): ${mean(full).toFixed(0)} req/s with the keys vs ${mean(empty).toFixed(0)} empty: x${(mean(full) / mean(empty)).toFixed(2)}`);
    console.log(
      `replaying ${REPLAYS} old keys one by one: ${replays.fromKafka.replayed} replayed, read back from Kafka p50 ${replays.fromKafka.p50.toFixed(1)} ms p99 ${replays.fromKafka.p99.toFixed(1)} ms; ` +
        `again (from memory): ${replays.fromMemory.replayed} replayed, p50 ${replays.fromMemory.p50.toFixed(1)} ms p99 ${replays.fromMemory.p99.toFixed(1)} ms`,
    );
    const [otherEmpty, otherFull] = others;
    if (otherEmpty && otherFull) {
      console.log(
        `other checkout: ${perKey(otherEmpty, otherFull).toFixed(0)} bytes per key, start-up ${otherFull.startupS.toFixed(1)} s with the keys ` +
          `(this one: ${perKey(empty, full).toFixed(0)} bytes per key, ${full.startupS.toFixed(1)} s)`,
      );
    }
  } finally {
    for (const s of started) await s.gateway.stop();
    if (local) await local.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
