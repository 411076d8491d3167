/**
 * Where a transaction's time goes, per client and protocol: one producer running transactions one
 * after another, as each pool slot (or Java producer) does. It explains the pool-versus-Java ratio
 * in bench/compare.ts: the requests each transaction costs, and librdkafka's retries.
 *
 *   npm run bench:round-trips                       # 3 rounds of 20 s per client, 2 records per transaction
 *   npm run bench:round-trips -- --seconds 60 --records 1 --rounds 5
 *
 * The clients take turns, in a rotating order, round after round; the report shows each client's
 * median round (by transactions per second) and the range over all rounds, since one run on a
 * shared 2-core machine moves by ±20%.
 *
 * Clients, each on the same broker and topic (6 partitions, 256 B records):
 *   librdkafka (the pool's client), classic protocol: per-step latency (begin, the wait for the
 *     deliveries, commit), requests sent by API (from its protocol debug log), and the
 *     AddPartitionsToTxn retries on CONCURRENT_TRANSACTIONS (the coordinator still writing the
 *     previous transaction's markers; librdkafka waits a fixed 20 ms before retrying);
 *   kafka-clients 4.x on KIP-890 (transaction.version 2) and on the classic protocol (the broker
 *     set to transaction.version 0 for that run): requests sent (its request-total metric).
 * Writes bench/results/round-trips.{json,md}.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalKafka, ensureTopics, fetchKafkaJars } from '../src/local-kafka/index.js';
import { Kafka } from '../src/kafka/native.js';
import { runJson } from './lib/harness.js';
import { compileJava, withTransactionVersion } from './lib/java.js';
import { percentile } from './lib/stats.js';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const option = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const SECONDS = Number(option('seconds') ?? 20);
const RECORDS = Number(option('records') ?? 2);
const ROUNDS = Number(option('rounds') ?? 3);
const RESULTS = path.resolve(option('out') ?? path.join(BENCH, 'results'));
const VALUE = Buffer.alloc(256, 'x');

interface Row {
  client: string;
  /** Transactions per second over every round, lowest to highest (in the report's rows only). */
  range?: [number, number];
  protocol: string;
  transactions: number;
  perSecond: number;
  p50: number;
  p99: number;
  /** Requests sent per transaction, all APIs; by API where the client says. */
  requestsPerTx: number;
  byApi?: Record<string, number>;
  /** AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS, per 100 transactions (librdkafka only). */
  concurrentRetriesPer100?: number;
  /** Mean ms per step (librdkafka only). */
  steps?: { begin: number; deliveries: number; commit: number };
}

type Callback = (error: unknown) => void;
const call = (f: (cb: Callback) => void) => new Promise<void>((resolve, reject) => f((e) => (e ? reject(e) : resolve())));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** One librdkafka producer, configured as the pool configures it, with its protocol debug log on. */
async function librdkafka(bootstrap: string, topic: string): Promise<Row> {
  const producer = new Kafka.Producer({
    'bootstrap.servers': bootstrap,
    'transactional.id': `round-trips-${Date.now()}`,
    'linger.ms': 1,
    dr_cb: true,
    debug: 'eos,protocol',
  });
  let counting = false;
  const sent: Record<string, number> = {};
  let concurrent = 0;
  producer.on('event.log', (log: { message: string }) => {
    if (!counting) return;
    const request = /Sent (\w+)Request/.exec(log.message);
    if (request) sent[request[1]!] = (sent[request[1]!] ?? 0) + 1;
    if (/AddPartitionsToTxn response.*concurrent operation/.test(log.message)) concurrent++;
  });
  const waiting = new Map<number, () => void>();
  producer.on('delivery-report', (_error, report) => waiting.get(report.opaque as number)?.());
  await call((cb) => producer.connect({ timeout: 30_000 }, cb));
  producer.setPollInBackground(true);
  await call((cb) => producer.initTransactions(30_000, cb));

  const steps = { begin: [] as number[], deliveries: [] as number[], commit: [] as number[], total: [] as number[] };
  let next = 0;
  counting = true;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  while (performance.now() < end) {
    const t0 = performance.now();
    await call((cb) => producer.beginTransaction(cb));
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: RECORDS }, () => {
        const id = next++;
        return new Promise<void>((resolve) => {
          waiting.set(id, resolve);
          producer.produce(topic, -1, VALUE, Buffer.from(`rt.${id}`), null, id);
        });
      }),
    );
    const t2 = performance.now();
    await call((cb) => producer.commitTransaction(30_000, cb));
    const t3 = performance.now();
    steps.begin.push(t1 - t0);
    steps.deliveries.push(t2 - t1);
    steps.commit.push(t3 - t2);
    steps.total.push(t3 - t0);
  }
  const elapsed = (performance.now() - started) / 1000;
  counting = false;
  await call((cb) => producer.disconnect(cb));
  const n = steps.total.length;
  const sorted = [...steps.total].sort((a, b) => a - b);
  return {
    client: `librdkafka ${Kafka.librdkafkaVersion}`,
    protocol: 'classic (AddPartitionsToTxn v0, EndTxn v1)',
    transactions: n,
    perSecond: n / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    requestsPerTx: Object.values(sent).reduce((a, b) => a + b, 0) / n,
    byApi: Object.fromEntries(Object.entries(sent).map(([api, count]) => [api, count / n])),
    concurrentRetriesPer100: (concurrent * 100) / n,
    steps: { begin: mean(steps.begin), deliveries: mean(steps.deliveries), commit: mean(steps.commit) },
  };
}

async function java(classpath: string, bootstrap: string, topic: string, protocol: string): Promise<Row> {
  const r = await runJson<{ committed: number; seconds: number; p50: number; p99: number; requests: number }>('java', [
    '-Xmx512m',
    '-cp',
    classpath,
    'TxProducers',
    bootstrap,
    topic,
    '1',
    String(RECORDS),
    String(SECONDS),
    `round-trips-java-${Date.now()}`,
  ]);
  return { client: 'kafka-clients (Java)', protocol, transactions: r.committed, perSecond: r.committed / r.seconds, p50: r.p50, p99: r.p99, requestsPerTx: r.requests / r.committed };
}

const fmt = (n: number | undefined, digits = 1) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));

function markdown(rows: Row[], kafka: string): string {
  const lib = rows.find((r) => r.steps);
  return [
    '# Round trips per transaction, by client and protocol',
    '',
    `Command: \`npm run bench:round-trips -- --seconds ${SECONDS} --records ${RECORDS} --rounds ${ROUNDS}\`. One producer running transactions back to back for ${SECONDS} s, ` +
      `${RECORDS} × 256 B records per transaction to a topic of 6 partitions, on one local broker (Kafka ${kafka}); ${os.cpus().length} cores, Node ${process.version}. ` +
      `Each client's median of ${ROUNDS} rounds (clients alternating), with the range of all rounds.`,
    '',
    '| client | protocol | tx/s (one producer) | range | p50 ms | p99 ms | requests per tx | by API | CONCURRENT_TRANSACTIONS retries per 100 tx |',
    '|---|---|---:|---|---:|---:|---:|---|---:|',
    ...rows.map(
      (r) =>
        `| ${r.client} | ${r.protocol} | ${fmt(r.perSecond)} | ${r.range ? `${fmt(r.range[0], 0)}–${fmt(r.range[1], 0)}` : '-'} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.requestsPerTx, 2)} | ` +
        `${r.byApi ? Object.entries(r.byApi).map(([api, n]) => `${api} ${n.toFixed(2)}`).join(', ') : '-'} | ${fmt(r.concurrentRetriesPer100)} |`,
    ),
    '',
    lib?.steps
      ? `librdkafka's mean per step: begin ${fmt(lib.steps.begin, 2)} ms, waiting for the deliveries (AddPartitionsToTxn, then Produce) ${fmt(lib.steps.deliveries, 2)} ms, commit (EndTxn) ${fmt(lib.steps.commit, 2)} ms.`
      : '',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'txgate-bench-round-trips-'));
  const local = new LocalKafka({ port: Number(process.env.BENCH_KAFKA_PORT ?? 19592), stateDir });
  try {
    const libDir = (await fetchKafkaJars()).trim().split('\n').pop()!;
    const bootstrap = await local.start();
    const topic = `round-trips-${Date.now()}`;
    await ensureTopics(bootstrap, [{ topic, partitions: 6 }]);
    const classpath = compileJava(libDir);
    const kafka = /kafka-clients-(.+)\.jar/.exec(readdirSync(libDir).find((f) => /^kafka-clients-.*\.jar$/.test(f)) ?? '')?.[1] ?? 'unknown';
    const clients: Array<() => Promise<Row>> = [
      () => librdkafka(bootstrap, topic),
      () => java(classpath, bootstrap, topic, 'KIP-890 (transaction.version 2)'),
      () => withTransactionVersion(classpath, bootstrap, 0, () => java(classpath, bootstrap, topic, 'classic (broker at transaction.version 0)')),
    ];
    const rounds: Row[][] = clients.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < clients.length; k++) {
        const i = (k + round) % clients.length;
        const row = await clients[i]!();
        rounds[i]!.push(row);
        console.log(`round ${round + 1}: ${row.client} ${row.protocol}: ${fmt(row.perSecond)} tx/s`);
      }
    }
    const rows = rounds.map((all) => {
      const byRate = [...all].sort((a, b) => a.perSecond - b.perSecond);
      return { ...byRate[Math.floor((byRate.length - 1) / 2)]!, range: [byRate[0]!.perSecond, byRate.at(-1)!.perSecond] as [number, number] };
    });
    for (const r of rows) console.log(`${r.client.padEnd(22)} ${r.protocol.padEnd(44)} ${fmt(r.perSecond).padStart(7)} tx/s  p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms  ${fmt(r.requestsPerTx, 2)} requests/tx`);
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(path.join(RESULTS, 'round-trips.json'), `${JSON.stringify({ seconds: SECONDS, records: RECORDS, rounds: ROUNDS, kafka, at: new Date().toISOString(), rows, all: rounds }, null, 2)}\n`);
    writeFileSync(path.join(RESULTS, 'round-trips.md'), markdown(rows, kafka));
    console.log(`results: ${path.relative(process.cwd(), RESULTS) || '.'}/round-trips.{json,md}`);
  } finally {
    await local.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
