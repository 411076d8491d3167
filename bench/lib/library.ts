/**
 * Library-level modes, each run as its own process by the harness so its peak RSS is its own:
 * callers in flight at once each run one transaction after another for a fixed time.
 *
 *   pool   the TransactionalProducerPool at a given size
 *   seed   a producer per transaction with a random transactional.id (the seed's design)
 *
 * Arg: one JSON LibrarySpec. Prints one JSON line (RunResult, bench/lib/work.ts) on stdout.
 * Warm-up, window and drain as in bench/lib/loadgen.ts: the same callers run throughout, and only
 * transactions that end within the window count.
 */
import { TransactionalProducerPool, createConfluentProducerFactory } from '../../src/index.js';
import { LoadPhases } from './phases.js';
import { errorKind, percentile, records, seedTransaction, type RunResult } from './work.js';

export interface LibrarySpec {
  mode: 'pool' | 'seed';
  bootstrap: string;
  topic: string;
  prefix: string;
  concurrency: number;
  records: number;
  /** The measured window. */
  seconds: number;
  poolSize?: number;
  /** Seconds of the same load before the window (discarded), extended until every caller has finished a transaction, up to warmupMaxSeconds. */
  warmupSeconds?: number;
  warmupMaxSeconds?: number;
  /** After the window, how long transactions in flight may take to end (default 60 s). */
  drainSeconds?: number;
  /** Extra librdkafka properties for the pool's producers: key=value separated by commas. */
  kafkaProps?: string;
}

const parseProps = (list: string | undefined): Record<string, string> =>
  Object.fromEntries((list ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LibrarySpec;
  let one: (i: number) => Promise<void>;
  let close = async () => {};
  if (spec.mode === 'pool') {
    const pool = new TransactionalProducerPool({
      producerFactory: createConfluentProducerFactory({ ...parseProps(spec.kafkaProps), 'bootstrap.servers': spec.bootstrap }),
      size: spec.poolSize ?? 8,
      transactionalIdPrefix: spec.prefix,
      instanceId: 'bench',
      maxWaiting: spec.concurrency,
      acquireTimeoutMs: 60_000,
    });
    await pool.start();
    one = async (i) => void (await pool.run((tx) => tx.send(records(spec.topic, spec.records, `p${i}`))));
    close = () => pool.close();
  } else {
    one = (i) => seedTransaction(spec.bootstrap, spec.prefix, records(spec.topic, spec.records, `s${i}`));
  }

  const warmup = spec.warmupSeconds ?? 0;
  const warmupMax = warmup > 0 ? Math.max(warmup, spec.warmupMaxSeconds ?? warmup) : 0;
  const phases = new LoadPhases(warmup, warmupMax);
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let next = 0;
  let sent = 0;
  let started = 0;
  let settled = 0;
  let warmupAnswers = 0;
  const callers = Array.from({ length: spec.concurrency }, () => ({ sentAt: undefined as number | undefined, answered: false, answeredInWindow: false }));
  const loops = Promise.all(
    callers.map(async (c) => {
      while (phases.phase !== 'drain') {
        const i = next++;
        const t = performance.now();
        c.sentAt = t;
        started++;
        if (phases.phase === 'window') sent++;
        let error: unknown;
        let failed = false;
        try {
          await one(i);
        } catch (e) {
          failed = true;
          error = e;
        }
        c.sentAt = undefined;
        c.answered = true;
        settled++;
        if (phases.phase === 'warmup') warmupAnswers++;
        if (phases.phase !== 'window') continue;
        c.answeredInWindow = true;
        if (failed) {
          const kind = errorKind(error);
          errors[kind] = (errors[kind] ?? 0) + 1;
        } else {
          latencies.push(performance.now() - t);
        }
      }
    }),
  );

  const { warmupSeconds, coldAtWindow, windowStart, windowEnd, unfinished, unfinishedOldestMs, silent } = await phases.measure(callers, spec.seconds);

  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([loops.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), (spec.drainSeconds ?? 60) * 1000)))]);
  clearTimeout(timer);
  if (drained) await close();
  latencies.sort((a, b) => a - b);
  const out: RunResult = {
    seconds: (windowEnd - windowStart) / 1000,
    window: { startMs: performance.timeOrigin + windowStart, endMs: performance.timeOrigin + windowEnd },
    ok: latencies.length,
    errors,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    sent,
    unfinished,
    unfinishedOldestMs,
    neverAnswered: started - settled,
    silent,
    warmupSeconds,
    warmupAnswers,
    coldAtWindow,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  // Transactions that never ended hold the event loop (and the pool's close) forever.
  if (!drained) process.exit(0);
}

await main();
