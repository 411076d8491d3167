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
import { parseKafkaPropList } from '../../src/gateway/config.js';
import { LoadPhases, runResult } from './phases.js';
import { errorKind, records, seedTransaction } from './work.js';

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
  /** Extra librdkafka properties for the pool's producers, as the gateway's --kafka-props takes them. */
  kafkaProps?: string;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LibrarySpec;
  let one: (i: number) => Promise<void>;
  let close = async () => {};
  if (spec.mode === 'pool') {
    const pool = new TransactionalProducerPool({
      producerFactory: createConfluentProducerFactory({ ...parseKafkaPropList(spec.kafkaProps ?? ''), 'bootstrap.servers': spec.bootstrap }),
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

  const window = await phases.measure(callers, spec.seconds);

  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([loops.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), (spec.drainSeconds ?? 60) * 1000)))]);
  clearTimeout(timer);
  if (drained) await close();
  const out = runResult(window, latencies, { ok: latencies.length, errors, sent, neverAnswered: started - settled, warmupAnswers });

  process.stdout.write(`${JSON.stringify(out)}\n`);
  // Transactions that never ended hold the event loop (and the pool's close) forever.
  if (!drained) process.exit(0);
}

await main();
