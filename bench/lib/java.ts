/**
 * The Java peer: bench/java/TxProducers.java compiled against the Kafka jars the launcher caches,
 * and the broker setting that makes kafka-clients speak the classic transaction protocol.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Compiles TxProducers into bench/.build/java; returns the classpath to run it with. */
export function compileJava(libDir: string): string {
  const out = path.join(BENCH, '.build', 'java');
  mkdirSync(out, { recursive: true });
  const classpath = `${libDir}/*`;
  execFileSync('javac', ['-d', out, '-cp', classpath, path.join(BENCH, 'java', 'TxProducers.java')], { stdio: 'inherit' });
  return `${out}:${classpath}`;
}

/**
 * Runs `run` while the broker's finalized transaction.version is `level`, then sets it back to 2
 * (what Kafka 4.x formats new clusters at). Clients read the level when they connect, so a
 * process started inside `run` speaks the protocol of that level: 0 and 1 are the classic one
 * (AddPartitionsToTxn before the first send to each partition), 2 is KIP-890's.
 * Only for a broker the benchmark started itself: it changes the whole cluster.
 */
export async function withTransactionVersion<T>(classpath: string, bootstrap: string, level: number, run: () => Promise<T>): Promise<T> {
  const feature = (command: 'upgrade' | 'downgrade', to: number) =>
    execFileSync('java', ['-cp', classpath, 'org.apache.kafka.tools.FeatureCommand', '--bootstrap-server', bootstrap, command, '--feature', `transaction.version=${to}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  feature('downgrade', level);
  try {
    return await run();
  } finally {
    feature('upgrade', 2);
  }
}
