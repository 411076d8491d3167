/**
 * The pool against the anti-pattern it replaces: a new transactional producer with a random
 * transactional.id for every request. Same work (one transaction of R records), same concurrency,
 * same broker. Prints throughput, latency percentiles, failures, the process's peak RSS and the
 * transactional ids each left on the coordinator, and the pool/per-request ratios.
 *
 *   npm run bench                                 # starts its own local broker
 *   TXGATE_BROKERS=host:9092 npm run bench        # or uses yours
 *   BENCH_TRANSACTIONS=2000 BENCH_CONCURRENCY=64 BENCH_POOL_SIZE=8 BENCH_RECORDS=2 npm run bench
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TransactionalProducerPool, createConfluentProducerFactory } from '../src/index.js';
import { LocalKafka, ensureTopics } from '../src/local-kafka/index.js';
import { runLauncher } from '../src/local-kafka/launcher.js';
import { seedTransaction } from './lib/work.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const TRANSACTIONS = env('BENCH_TRANSACTIONS', 2000);
const CONCURRENCY = env('BENCH_CONCURRENCY', 64);
const POOL_SIZE = env('BENCH_POOL_SIZE', 8);
const RECORDS = env('BENCH_RECORDS', 2);
const PER_REQUEST_TRANSACTIONS = env('BENCH_PER_REQUEST_TRANSACTIONS', Math.min(TRANSACTIONS, 500));

interface Result {
  name: string;
  transactions: number;
  failed: number;
  seconds: number;
  latenciesMs: number[];
  peakRssMiB: number;
  idsLeft: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `one` TRANSACTIONS times with CONCURRENCY callers in flight; samples RSS meanwhile. */
async function drive(name: string, count: number, one: (i: number) => Promise<void>, idsLeft: () => Promise<number>): Promise<Result> {
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        const t = performance.now();
        try {
          await one(i);
          latencies.push(performance.now() - t);
        } catch {
          failed++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  return { name, transactions: count, failed, seconds, latenciesMs: latencies.sort((a, b) => a - b), peakRssMiB: peak / 2 ** 20, idsLeft: await idsLeft() };
}

function report(r: Result): string {
  const ok = r.transactions - r.failed;
  return [
    r.name.padEnd(22),
    `${(ok / r.seconds).toFixed(1).padStart(8)} tx/s`,
    `p50 ${percentile(r.latenciesMs, 50).toFixed(1).padStart(7)} ms`,
    `p99 ${percentile(r.latenciesMs, 99).toFixed(1).padStart(7)} ms`,
    `failed ${String(r.failed).padStart(4)}/${r.transactions}`,
    `peak RSS ${r.peakRssMiB.toFixed(0).padStart(4)} MiB`,
    `ids on coordinator ${r.idsLeft}`,
  ].join('  ');
}

async function main(): Promise<void> {
  let local: LocalKafka | undefined;
  let stateDir: string | undefined;
  let bootstrap = process.env.TXGATE_BROKERS;
  if (!bootstrap) {
    stateDir = mkdtempSync(path.join(tmpdir(), 'txgate-bench-'));
    local = new LocalKafka({ port: env('BENCH_KAFKA_PORT', 19392), stateDir });
    bootstrap = await local.start();
  }
  const topic = `bench-${Date.now()}`;
  await ensureTopics(bootstrap, [{ topic, partitions: 6 }]);
  const countIds = async (prefix: string) =>
    (await runLauncher('transactions', ['list'], { KAFKA_BOOTSTRAP: bootstrap })).split('\n').filter((l) => l.startsWith(prefix)).length;
  const records = (i: number) =>
    Array.from({ length: RECORDS }, (_, r) => ({ topic, key: Buffer.from(`k${i}-${r}`), value: Buffer.alloc(256, 'x') }));
  console.log(
    `# txgate bench: ${TRANSACTIONS} transactions (per-request: ${PER_REQUEST_TRANSACTIONS}) of ${RECORDS} x 256 B, ` +
      `concurrency ${CONCURRENCY}, pool size ${POOL_SIZE}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 4}, broker ${bootstrap}`,
  );

  try {
    const prefix = `bench-pool-${Date.now()}`;
    const pool = new TransactionalProducerPool({
      producerFactory: createConfluentProducerFactory({ 'bootstrap.servers': bootstrap }),
      size: POOL_SIZE,
      transactionalIdPrefix: prefix,
      instanceId: 'bench',
      maxWaiting: CONCURRENCY,
      acquireTimeoutMs: 60_000,
    });
    await pool.start();
    const pooled = await drive('pool', TRANSACTIONS, async (i) => void (await pool.run((tx) => tx.send(records(i)))), () => countIds(prefix));
    await pool.close();
    console.log(report(pooled));

    const perRequestPrefix = `bench-uuid-${Date.now()}`;
    const perRequest = await drive(
      'producer per request',
      PER_REQUEST_TRANSACTIONS,
      (i) => seedTransaction(bootstrap, perRequestPrefix, records(i)),
      () => countIds(perRequestPrefix),
    );
    console.log(report(perRequest));

    const rate = (r: Result) => (r.transactions - r.failed) / r.seconds;
    console.log(
      `ratios (pool / per-request): throughput x${(rate(pooled) / rate(perRequest)).toFixed(1)}, ` +
        `p50 latency x${(percentile(perRequest.latenciesMs, 50) / percentile(pooled.latenciesMs, 50)).toFixed(1)} lower, ` +
        `transactional ids ${pooled.idsLeft} vs ${perRequest.idsLeft}`,
    );
  } finally {
    if (local) await local.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
