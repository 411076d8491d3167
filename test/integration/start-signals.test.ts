/**
 * `txgate start` (and `npm start`) under the signals people and process managers send. The
 * broker JVM runs in its own session, so only `txgate start` stops it: every way of stopping
 * must drain the gateway, stop the broker and exit 0, and a broker left by a crashed
 * `txgate start` must be found and stopped by the next one.
 *
 * Each process runs in its own process group (detached), as in a terminal, so a signal can go
 * to the group (Ctrl-C; docker stop / systemd / Kubernetes with a shell in front) or to the
 * process alone (kill PID). Brokers run on a free port pair with their own state directory.
 * Also: `txgate serve` (runGateway) drains on a duplicated signal instead of exiting at once.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { LocalKafka } from '../../src/local-kafka/single-node.js';
import { testBootstrap, uniqueName, waitFor } from '../support/kafka.js';
import { CLUSTER_BASE_PORT, DEV_PORTS, KILLABLE_BROKER_PORT, LAUNCHER_TEST_PORT, TEST_BROKER_PORT } from '../support/ports.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'txgate.cjs');
const READY_TIMEOUT_MS = 180_000; // a broker start is 5-15 s; npm start runs setup.sh first
const EXIT_TIMEOUT_MS = 90_000; // drain + broker stop (KAFKA_STOP_TIMEOUT is 30 s before SIGKILL)

const scratch = mkdtempSync(path.join(tmpdir(), 'txgate-start-signals-'));
const spawned: Proc[] = [];
const brokers: LocalKafka[] = [];
after(async () => {
  // a failed test must not leave a gateway or a broker behind
  for (const p of spawned) p.killGroup('SIGKILL');
  await Promise.all(brokers.map((b) => b.stop().catch(() => {})));
  rmSync(scratch, { recursive: true, force: true });
});

/** Ports other tests and the engineers' brokers use (test/support/ports.ts), each with its controller port. */
function reserved(port: number): boolean {
  const ranges: Array<[number, number]> = [
    [TEST_BROKER_PORT, TEST_BROKER_PORT + 1],
    [39092, 39193], // scripts/test.sh's other test-broker pairs, and the launcher tests'
    [LAUNCHER_TEST_PORT, LAUNCHER_TEST_PORT + 1],
    [CLUSTER_BASE_PORT, CLUSTER_BASE_PORT + 5],
    [KILLABLE_BROKER_PORT, KILLABLE_BROKER_PORT + 1],
    ...Object.values(DEV_PORTS).map((p): [number, number] => [p, p + 1]),
  ];
  return ranges.some(([lo, hi]) => port >= lo && port <= hi);
}

function listen(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** A broker port whose controller port (the next one) is free too. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const first = await listen(0);
    if (!first) continue;
    const port = (first.address() as net.AddressInfo).port;
    const second = port < 65535 && !reserved(port) && !reserved(port + 1) ? await listen(port + 1) : undefined;
    await new Promise((r) => first.close(r));
    if (second) {
      await new Promise((r) => second.close(r));
      return port;
    }
  }
  throw new Error('no free port pair');
}

interface Broker {
  stateDir: string;
  port: number;
  env: NodeJS.ProcessEnv;
  local: LocalKafka;
}

function newBroker(name: string, port: number): Broker {
  const stateDir = mkdtempSync(path.join(scratch, `${name}-`));
  // scripts/test.sh exports its own broker's KAFKA_PORT and KAFKA_LOCAL_STATE: replace them
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KAFKA_PORT: String(port),
    KAFKA_LOCAL_STATE: stateDir,
    TXGATE_PORT: '0',
    TXGATE_POOL_SIZE: '2',
    TXGATE_INSTANCE_ID: uniqueName('start-signals'),
    TXGATE_LOG_LEVEL: 'warn',
  };
  for (const k of ['TXGATE_BROKERS', 'KAFKA_CONTROLLER_PORT', 'KAFKA_BOOTSTRAP']) delete env[k];
  const local = new LocalKafka({ port, stateDir });
  brokers.push(local);
  return { stateDir, port, env, local };
}

/** A process in its own process group, with its output collected. */
class Proc {
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<() => void>();

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    spawned.push(this);
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      for (const w of this.waiters) w();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      for (const w of this.waiters) w();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    assert.ok(this.child.pid !== undefined, 'spawned');
    return this.child.pid;
  }

  get output(): string {
    return `--- stdout\n${this.stdout}\n--- stderr\n${this.stderr}`;
  }

  /** Resolves when `pattern` appears in stdout or stderr; rejects if the process exits first or time runs out. */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = pattern.exec(this.stdout) ?? pattern.exec(this.stderr);
        if (m) done(() => resolve(m));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${this.output}`))), timeoutMs);
      const onExit = ({ code, signal }: { code: number | null; signal: NodeJS.Signals | null }): void => {
        check(); // output read before the exit
        done(() => reject(new Error(`exited (code ${code}, signal ${signal}) before printing ${pattern}:\n${this.output}`)));
      };
      let settled = false;
      const done = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      void this.exited.then(onExit);
      check();
    });
  }

  /** Waits for "txgate is ready" and returns the gateway's URL. */
  async ready(): Promise<string> {
    await this.waitForOutput(/Press Ctrl-C to stop/, READY_TIMEOUT_MS);
    const url = /Gateway +(http:\/\/\S+)/.exec(this.stdout)?.[1];
    assert.ok(url, this.output);
    return url;
  }

  signal(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }

  /** Like a terminal (Ctrl-C) or a process manager: every process of the group gets it. */
  signalGroup(signal: NodeJS.Signals): void {
    process.kill(-this.pid, signal);
  }

  killGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      // already gone
    }
  }

  async exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not exit within ${EXIT_TIMEOUT_MS} ms:\n${this.output}`)), EXIT_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function txgateStart(broker: Broker): Proc {
  return new Proc(process.execPath, [BIN, 'start'], broker.env);
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return ''; // gone (a zombie's cmdline is empty too)
  }
}

/** Every live java process whose command line names this state directory. */
function javaProcessesOf(stateDir: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const cmd = cmdline(pid);
      return cmd.includes('java') && cmd.includes(stateDir);
    });
}

/** Every live process, with its parent and process group (/proc/PID/stat). */
function processes(): Array<{ pid: number; ppid: number; pgid: number; cmd: string }> {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .flatMap((e) => {
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
        const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return state === 'Z' ? [] : [{ pid: Number(e), ppid: Number(ppid), pgid: Number(pgrp), cmd: cmdline(Number(e)) }];
      } catch {
        return []; // gone meanwhile
      }
    });
}

/** Every live process of process group `pgid`. */
function groupMembers(pgid: number): number[] {
  return processes()
    .filter((p) => p.pgid === pgid)
    .map((p) => p.pid);
}

/** The running broker's pid, checked to be the JVM of this state directory. */
function brokerPid(broker: Broker): number {
  const pid = Number(readFileSync(path.join(broker.stateDir, 'single', 'pid'), 'utf8'));
  assert.ok(cmdline(pid).includes(path.join(broker.stateDir, 'single', 'server.properties')), `broker pid ${pid} is the JVM of ${broker.stateDir}`);
  return pid;
}

/** Commits one transaction through the gateway, as the curl `txgate start` prints does. */
async function commitOne(url: string): Promise<void> {
  const res = await fetch(`${url}/v1/transactions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': uniqueName('key') },
    body: JSON.stringify({ records: [{ topic: 'demo', key: 'order-1', value: { item: 'book' } }, { topic: 'demo', key: 'order-1', value: { event: 'reserved' } }] }),
  });
  const body = (await res.json()) as { status?: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.status, 'committed');
}

/** After a `txgate start` that owned the broker exited: the JVM is gone and `stop` ran to its end. */
function assertBrokerStopped(broker: Broker, pid: number, proc: Proc): void {
  assert.equal(cmdline(pid), '', `broker pid ${pid} is gone:\n${proc.output}`);
  assert.deepEqual(javaProcessesOf(broker.stateDir), [], `no java process of ${broker.stateDir} is left`);
  // kafka-local.sh stop deletes the node's directory last: a stop script killed half-way leaves it
  assert.equal(existsSync(path.join(broker.stateDir, 'single')), false, `kafka-local.sh stop finished:\n${proc.output}`);
  assert.match(proc.stderr, /the local Kafka broker stopped/);
}

describe('txgate start: signals stop the gateway and the broker', { timeout: 600_000 }, () => {
  it('SIGTERM to the node process alone (kill PID)', async () => {
    const broker = newBroker('term-pid', await freePortPair());
    const proc = txgateStart(broker);
    await commitOne(await proc.ready());
    const pid = brokerPid(broker);
    proc.signal('SIGTERM');
    assert.deepEqual(await proc.exit(), { code: 0, signal: null }, proc.output);
    assertBrokerStopped(broker, pid, proc);
  });

  it('SIGTERM to the process group (docker stop, systemd, Kubernetes)', async () => {
    const broker = newBroker('term-group', await freePortPair());
    const proc = txgateStart(broker);
    await commitOne(await proc.ready());
    const pid = brokerPid(broker);
    proc.signalGroup('SIGTERM');
    assert.deepEqual(await proc.exit(), { code: 0, signal: null }, proc.output);
    assertBrokerStopped(broker, pid, proc);
  });

  it('kill -9 leaves the broker; the next txgate start says so, takes it over, and Ctrl-C (twice at once, and again while the broker stops) stops it', async () => {
    const broker = newBroker('crash', await freePortPair());
    const crashed = txgateStart(broker);
    await commitOne(await crashed.ready());
    const pid = brokerPid(broker);
    crashed.signal('SIGKILL');
    assert.deepEqual(await crashed.exit(), { code: null, signal: 'SIGKILL' });
    assert.ok(cmdline(pid) !== '', 'the broker outlives a kill -9 of txgate start (it runs in its own session)');

    const next = txgateStart(broker);
    const url = await next.ready();
    assert.match(next.stderr, new RegExp(`left running by an earlier txgate start that crashed \\(pid ${crashed.pid}\\)`), next.output);
    assert.doesNotMatch(next.stderr, /starting a local Kafka broker/, 'it reuses the broker');
    assert.equal(brokerPid(broker), pid, 'the same broker');
    await commitOne(url);

    // A terminal's Ctrl-C reaches the whole group, and npm forwards it as well: the second SIGINT
    // comes milliseconds later, after the first was handled (sent once it was, so it is not merged
    // with the first while pending). Node's default action on it would kill txgate at once.
    next.signalGroup('SIGINT');
    await next.waitForOutput(/SIGINT: draining the gateway/, EXIT_TIMEOUT_MS);
    next.signalGroup('SIGINT');
    await next.waitForOutput(/txgate: stopping the local Kafka broker/, EXIT_TIMEOUT_MS);
    // Ctrl-C again while kafka-local.sh stop runs (the JVM takes seconds to stop): it reaches
    // txgate's process group, which must not hold the stop script.
    // (once it runs the script: txgate logs the line just before it spawns it)
    const stopScript = await waitFor(() => processes().find((p) => p.ppid === next.pid && /kafka-local\.sh stop/.test(p.cmd)), {
      timeoutMs: 10_000,
      intervalMs: 10,
      what: 'kafka-local.sh stop to run',
    });
    assert.notEqual(stopScript.pgid, next.pid, 'the stop script is not in txgate start\'s process group');
    next.signalGroup('SIGINT');
    assert.deepEqual(await next.exit(), { code: 0, signal: null }, next.output);
    assert.doesNotMatch(next.stderr, /trying again/, 'the stop script survived the Ctrl-C');
    assert.doesNotMatch(next.stderr, /not waiting for in-flight requests/, 'the duplicate SIGINT did not cut the drain short');
    assert.equal(next.stderr.match(/SIGINT: draining the gateway/g)?.length, 1, 'the duplicate SIGINT counted once');
    assertBrokerStopped(broker, pid, next);
  });

  it('npm start under its own session: Ctrl-C to the group (npm forwards it too) stops everything, exit 0', async () => {
    const broker = newBroker('npm', await freePortPair());
    const npm = new Proc('npm', ['start'], broker.env);
    const url = await npm.ready();
    await commitOne(url);
    const pid = brokerPid(broker);
    npm.signalGroup('SIGINT');
    assert.deepEqual(await npm.exit(), { code: 0, signal: null }, npm.output);
    assert.deepEqual(groupMembers(npm.pid), [], 'nothing of npm start is left running');
    assertBrokerStopped(broker, pid, npm);
  });

  it('a broker started by hand (npm run kafka start) is used and left running', async () => {
    const broker = newBroker('by-hand', await freePortPair());
    await broker.local.start();
    const pid = brokerPid(broker);
    const proc = txgateStart(broker);
    await commitOne(await proc.ready());
    assert.match(proc.stderr, /already running .*not started by txgate start.*leaving it running/, proc.output);
    proc.signalGroup('SIGTERM');
    assert.deepEqual(await proc.exit(), { code: 0, signal: null }, proc.output);
    assert.equal(brokerPid(broker), pid, 'the broker still runs');
    assert.match(proc.stderr, /leaving the local Kafka broker running/);
    await broker.local.stop();
    assert.equal(cmdline(pid), '');
  });
});

describe('txgate serve: a duplicated signal still drains', { timeout: 180_000 }, () => {
  it('a second SIGTERM right after the first exits 0 after a clean drain, not at once', async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TXGATE_BROKERS: testBootstrap(),
      TXGATE_PORT: '0',
      TXGATE_POOL_SIZE: '2',
      TXGATE_INSTANCE_ID: uniqueName('serve-signals'),
      TXGATE_IDEMPOTENCY_TOPIC: uniqueName('serve-signals-idem'),
      TXGATE_LOG_LEVEL: 'info',
    };
    const proc = new Proc(process.execPath, [BIN, 'serve'], env);
    await proc.waitForOutput(/"msg":"txgate gateway ready"/, READY_TIMEOUT_MS);
    proc.signalGroup('SIGTERM');
    // the duplicate (as from a process manager plus a wrapper forwarding it), once the first was handled
    await proc.waitForOutput(/"msg":"signal received"/, 30_000);
    assert.equal(proc.child.exitCode, null, 'still draining when the duplicate comes');
    proc.signal('SIGTERM');
    assert.deepEqual(await proc.exit(), { code: 0, signal: null }, proc.output);
    assert.match(proc.stdout, /"clean":true,"msg":"gateway stopped"/, proc.output);
    assert.doesNotMatch(proc.stdout, /second signal/);
  });
});
