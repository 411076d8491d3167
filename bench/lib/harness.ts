/**
 * Child processes for the benchmarks that compare services (bench/compare.ts, bench/seed-growth.ts):
 * servers under test started fresh and stopped as a process group, their peak RSS, and one-shot
 * children that print a JSON line (the load generator, library modes, the Java producers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { procStatusMiB } from '../../test/support/proc.js';
import type { LoadgenSpec } from './loadgen.js';
import type { RunResult } from './work.js';

const LIB = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.join(LIB, '..', '..');

export const TSX = ['--import', 'tsx'];
// Blocking transactional calls each hold a libuv thread: size the pool above any concurrency used.
export const CHILD_ENV = { ...process.env, UV_THREADPOOL_SIZE: '128' };

/**
 * Keeps the latest VmHWM (peak RSS) of `pid` (and of its children, for wrapper scripts) until stopped:
 * sampled, because it is gone once the process exits.
 */
export function trackPeak(pid: number | undefined): () => number {
  let peak = NaN;
  const sample = () => {
    let v = procStatusMiB(pid, 'VmHWM');
    try {
      // A launcher script (the bridge's) runs the JVM as its child: take the largest.
      for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) v = Math.max(v || 0, procStatusMiB(Number(child), 'VmHWM'));
    } catch {
      // no children file: the process has exited
    }
    if (Number.isFinite(v)) peak = Number.isFinite(peak) ? Math.max(peak, v) : v;
  };
  sample();
  const timer = setInterval(sample, 200);
  return () => {
    sample();
    clearInterval(timer);
    return peak;
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
export function loadgen(spec: LoadgenSpec): Promise<RunResult> {
  return runJson<RunResult>(process.execPath, [...TSX, path.join(LIB, 'loadgen.ts'), JSON.stringify(spec)], process.env);
}

