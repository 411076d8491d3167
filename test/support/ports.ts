/**
 * Ports reserved for tests (see /tmp/team/conventions.md). Always on 127.0.0.1.
 * Tests that start their own brokers on the shared ports below must hold the matching lock
 * (withPortLock), because test files run in parallel processes.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const HOST = '127.0.0.1';

/** The broker scripts/test.sh starts for the whole run (TXGATE_TEST_KAFKA_PORT overrides it). */
export const TEST_BROKER_PORT = Number(process.env.TXGATE_TEST_KAFKA_PORT) || 39092;

/** A 3-node cluster for failure tests: nodes on 29092, 29094, 29096, controllers one above (29092-29097). */
export const CLUSTER_BASE_PORT = 29092;

/** A single node that tests kill and restart (broker 19292, controller 19293). */
export const KILLABLE_BROKER_PORT = 19292;
export const KILLABLE_CONTROLLER_PORT = 19293;

/** The launcher's own tests (test/integration/kafka-local.test.ts): broker 39192, controller 39193. */
export const LAUNCHER_TEST_PORT = 39192;

export const PORTS = {
  testBroker: TEST_BROKER_PORT,
  clusterBase: CLUSTER_BASE_PORT,
  restartBroker: KILLABLE_BROKER_PORT,
  restartController: KILLABLE_CONTROLLER_PORT,
  launcherTest: LAUNCHER_TEST_PORT,
} as const;

/** Ports of the engineers' own development brokers: tests never use these. */
export const DEV_PORTS = { lead: 19092, foundation: 39092, gatewayHttp: 49092, gatewayCore: 59092 } as const;

export type PortLockName = 'cluster' | 'killable-broker' | 'launcher-test';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function statSafe(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return Date.now();
  }
}

/**
 * Runs fn while holding an exclusive, machine-wide lock on a set of shared test ports. Waits
 * (polling) for a holder in another test process to finish; a lock whose holder died is taken over.
 */
export async function withPortLock<T>(name: PortLockName, fn: () => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
  // not os.tmpdir(): scripts/test.sh gives each run its own TMPDIR, and these locks span runs
  const file = path.join(process.env.TXGATE_TEST_LOCK_DIR || tmpdir(), `txgate-test-ports-${name}.lock`);
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000);
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = NaN;
      try {
        holder = Number(readFileSync(file, 'utf8'));
      } catch {
        continue; // released between our open and read
      }
      // an empty file is a holder between its open and its write (stale only if it stays empty)
      const stale = holder > 0 ? !pidAlive(holder) : Date.now() - statSafe(file) > 10_000;
      if (stale) {
        rmSync(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`test ports "${name}" still locked by pid ${holder} (${file})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}
