/**
 * `txgate serve` as a child process, for tests and benchmarks that need real gateway processes:
 * several instances, kill -9, signals, memory and CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, procStatusMiB } from './proc.js';
import { waitFor } from './wait.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The CLI (it runs dist/, or src/ through tsx when dist/ is stale: see bin/txgate.cjs). */
export const TXGATE_BIN = path.join(ROOT, 'bin', 'txgate.cjs');

/** A TCP port that was free a moment ago on `host`. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

export interface GatewayProcessOptions {
  label: string;
  brokers: string;
  port: number;
  instanceId: string;
  /** Further `txgate serve` flags. */
  args?: string[];
  host?: string;
  /** The checkout whose bin/txgate.cjs runs (default: this one), e.g. a previous commit's to compare with. */
  root?: string;
  /**
   * Set in the child's environment. It has none of this process's TXGATE_* variables (flags decide
   * everything) nor UV_THREADPOOL_SIZE (the CLI sizes libuv's pool) unless they are given here.
   */
  env?: Record<string, string>;
  /** Called with every line the gateway prints (stdout and stderr), which `logs` also keeps. */
  onLine?: (line: string) => void;
}

export class GatewayProcess {
  readonly logs: string[] = [];
  readonly label: string;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** performance.now() when the process was spawned. */
  readonly startedAt = performance.now();
  private readonly child: ChildProcess;
  private readonly host: string;

  constructor(opts: GatewayProcessOptions) {
    this.label = opts.label;
    this.port = opts.port;
    this.host = opts.host ?? '127.0.0.1';
    // Flags decide everything: no TXGATE_* from the caller's environment, and the CLI sizes libuv's pool.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TXGATE_') && k !== 'UV_THREADPOOL_SIZE'));
    Object.assign(env, opts.env);
    this.child = spawn(
      process.execPath,
      [
        opts.root === undefined ? TXGATE_BIN : path.join(opts.root, 'bin', 'txgate.cjs'),
        'serve',
        '--brokers',
        opts.brokers,
        '--host',
        this.host,
        '--port',
        String(opts.port),
        '--instance-id',
        opts.instanceId,
        '--log-level',
        'warn',
        ...(opts.args ?? []),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (d: Buffer) => {
      const lines = d.toString().split('\n').filter((l) => l !== '');
      this.logs.push(...lines);
      if (opts.onLine) for (const line of lines) opts.onLine(line);
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Resolves once /readyz answers 200, with the milliseconds since the process was spawned; rejects
   * if the process exits first or the deadline passes. `intervalMs`: the pause between two asks.
   */
  async ready(timeoutMs = 180_000, intervalMs = 200): Promise<number> {
    let exited = false;
    void this.exited.then(() => (exited = true));
    // While starting, /readyz says which step start-up is at and its last error: kept for the failure message.
    let lastAnswer = 'none';
    await waitFor(
      async () => {
        if (exited) throw new Error(`${this.label} exited before it was ready:\n${this.logs.join('\n')}`);
        try {
          const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
          lastAnswer = `${res.status} ${await res.text()}`;
          return res.status === 200;
        } catch (err) {
          lastAnswer = String(err);
          return false;
        }
      },
      { timeoutMs, intervalMs, what: `${this.label} to answer /readyz with 200` },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; last /readyz answer: ${lastAnswer}`);
    });
    return performance.now() - this.startedAt;
  }

  /** Resident set size now and its peak so far (VmRSS, VmHWM), in MiB; NaN once the process is gone. */
  memory(): { rssMiB: number; hwmMiB: number } {
    return { rssMiB: procStatusMiB(this.pid, 'VmRSS'), hwmMiB: procStatusMiB(this.pid, 'VmHWM') };
  }

  /** CPU seconds (user + system) the gateway has used so far. */
  cpuSeconds(): number {
    return cpuSeconds(this.child.pid!);
  }

  /** Sends `signal` (if still running) and waits for the exit. */
  async kill(signal: NodeJS.Signals, timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.alive) this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label} did not exit within ${timeoutMs} ms of ${signal}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A graceful stop: SIGTERM (the gateway drains), then SIGKILL if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    try {
      return await this.kill('SIGTERM', timeoutMs);
    } catch {
      return this.kill('SIGKILL');
    }
  }
}
