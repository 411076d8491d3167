/**
 * Child processes for the benchmarks that compare services (bench/compare.ts, bench/seed-growth.ts):
 * servers under test started fresh and stopped as a process group, what they use (watchProcess), and one-shot
 * children that print a JSON line (the load generator, library modes, the Java producers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, procStatusMiB } from '../../test/support/proc.js';
import type { LoadgenSpec } from './loadgen.js';
import type { RunResult, WallWindow } from './work.js';

const LIB = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.join(LIB, '..', '..');

export const TSX = ['--import', 'tsx'];
// Blocking transactional calls each hold a libuv thread: size the pool above any concurrency used.
export const CHILD_ENV = { ...process.env, UV_THREADPOOL_SIZE: '128' };

/** What a process under test used during one point. */
export interface Usage {
  /** Largest VmHWM of the process (or of its child, for a wrapper script), MiB. */
  peakRssMiB: number;
  /** Most file descriptors it held open at once (sockets included). */
  peakFds: number;
  /** Average CPU over the measured window, in cores (1 = one core busy): the process, and the broker when known. */
  cpuCores?: number;
  brokerCpuCores?: number;
}

const children = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return []; // the process has exited
  }
};

const safe = (f: () => number): number => {
  try {
    return f();
  } catch {
    return Number.NaN;
  }
};

/**
 * Samples a process under test (and its children: the bridge's launcher script runs the JVM) every
 * 200 ms until stopped: peak RSS and open descriptors, and cumulative CPU of it and of the broker,
 * so that the CPU of the measured window alone can be read back by interpolation. Sampled, because
 * /proc forgets a process once it exits.
 */
export function watchProcess(pid: number | undefined, brokerPid?: number): (window?: WallWindow) => Usage {
  let peakRss = Number.NaN;
  let peakFds = Number.NaN;
  const cpu: Array<{ at: number; process: number; broker: number }> = [];
  const sample = () => {
    if (pid === undefined) return;
    const tree = [pid, ...children(pid)];
    const rss = Math.max(...tree.map((p) => procStatusMiB(p, 'VmHWM')).filter(Number.isFinite));
    if (Number.isFinite(rss)) peakRss = Number.isFinite(peakRss) ? Math.max(peakRss, rss) : rss;
    const fds = tree.map((p) => safe(() => readdirSync(`/proc/${p}/fd`).length)).filter(Number.isFinite);
    if (fds.length > 0) peakFds = Math.max(Number.isFinite(peakFds) ? peakFds : 0, fds.reduce((a, b) => a + b, 0));
    const used = tree.map((p) => safe(() => cpuSeconds(p))).filter(Number.isFinite);
    if (used.length > 0) cpu.push({ at: Date.now(), process: used.reduce((a, b) => a + b, 0), broker: brokerPid === undefined ? Number.NaN : safe(() => cpuSeconds(brokerPid)) });
  };
  sample();
  const timer = setInterval(sample, 200);
  return (window) => {
    sample();
    clearInterval(timer);
    const usage: Usage = { peakRssMiB: peakRss, peakFds };
    if (!window || cpu.length < 2 || window.endMs <= window.startMs) return usage;
    const at = (t: number, pick: (s: (typeof cpu)[number]) => number): number => {
      // Linear between the samples around t; clamped to the first and last sample.
      const after = cpu.findIndex((s) => s.at >= t);
      if (after <= 0) return pick(cpu[after === 0 ? 0 : cpu.length - 1]!);
      const a = cpu[after - 1]!;
      const b = cpu[after]!;
      return pick(a) + ((pick(b) - pick(a)) * (t - a.at)) / (b.at - a.at);
    };
    const cores = (pick: (s: (typeof cpu)[number]) => number) => (at(window.endMs, pick) - at(window.startMs, pick)) / ((window.endMs - window.startMs) / 1000);
    usage.cpuCores = cores((s) => s.process);
    const broker = cores((s) => s.broker);
    if (Number.isFinite(broker)) usage.brokerCpuCores = broker;
    return usage;
  };
}

/** Runs a child to completion; resolves with its last stdout line parsed as JSON. */
export function runJson<T>(command: string, args: string[], env: NodeJS.ProcessEnv = CHILD_ENV, onSpawn?: (child: ChildProcess) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    onSpawn?.(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        reject(new Error(`${path.basename(args.find((a) => /\.(ts|java)$|^[A-Z]/.test(a)) ?? command)} exited with ${code}:\n${out.slice(-2000)}\n${err}`));
      }
    });
  });
}

/** A server under test: a process that prints "listening" (or answers `readyPath`) once ready. */
export class ServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(command: string, args: string[], port: number, readyPath: string | undefined, env: NodeJS.ProcessEnv = CHILD_ENV): Promise<ServerProcess> {
    const child = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const server = new ServerProcess(child, `http://127.0.0.1:${port}`);
    let log = '';
    let listening = false;
    child.stdout!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000);
      if (log.includes('listening')) listening = true;
    });
    child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${args.join(' ')} exited before it was ready:\n${log}`);
      if (readyPath) {
        try {
          if ((await fetch(`${server.url}${readyPath}`, { signal: AbortSignal.timeout(2000) })).ok) return server;
        } catch {
          // not listening yet
        }
      } else if (listening) return server;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`${args.join(' ')} was not ready within 120 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** SIGTERM to the process group (a launcher script and its JVM alike), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(-pid, s);
      } catch {
        // already gone
      }
    };
    signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 15_000)))]);
    clearTimeout(timer);
    if (killed) {
      signal('SIGKILL');
      await exited;
    }
  }
}

/** Runs bench/lib/loadgen.ts (autocannon) in its own process and resolves with its result. */
export async function loadgen(spec: LoadgenSpec): Promise<RunResult> {
  // Through a file: 64 bodies of 10 records each are more than one argument may hold (128 KiB).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txgate-loadgen-'));
  const file = path.join(dir, 'spec.json');
  writeFileSync(file, JSON.stringify(spec));
  try {
    return await runJson<RunResult>(process.execPath, [...TSX, path.join(LIB, 'loadgen.ts'), `@${file}`], process.env);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

