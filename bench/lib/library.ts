/**
 * Library-level modes, each run as its own process by the harness so its peak RSS is its own:
 * callers in flight at once each run one transaction after another for a fixed time.
 *
 *   pool   the TransactionalProducerPool at a given size
 *   seed   a producer per transaction with a random transactional.id (the seed's design)
 *
 * Arg: one JSON LibrarySpec. Prints one JSON line (RunResult, bench/lib/work.ts) on stdout.
 */
import { TransactionalProducerPool, createConfluentProducerFactory } from '../../src/index.js';
import { errorKind, percentile, records, seedTransaction, type RunResult } from './work.js';

export interface LibrarySpec {
  mode: 'pool' | 'seed';
  bootstrap: string;
  topic: string;
  prefix: string;
  concurrency: number;
  records: number;
  seconds: number;
  poolSize?: number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LibrarySpec;
  let one: (i: number) => Promise<void>;
  let close = async () => {};
  if (spec.mode === 'pool') {
    const pool = new TransactionalProducerPool({
      producerFactory: createConfluentProducerFactory({ 'bootstrap.servers': spec.bootstrap }),
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

  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let next = 0;
  const started = performance.now();
  const deadline = started + spec.seconds * 1000;
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (performance.now() < deadline) {
        const i = next++;
        const t = performance.now();
        try {
          await one(i);
          latencies.push(performance.now() - t);
        } catch (error) {
          const kind = errorKind(error);
          errors[kind] = (errors[kind] ?? 0) + 1;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await close();
  latencies.sort((a, b) => a - b);
  const out: RunResult = {
    seconds,
    ok: latencies.length,
    errors,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
