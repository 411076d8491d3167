/**
 * `txgate serve` as a child process, for tests and benchmarks that need real gateway processes:
 * several instances, kill -9, signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './kafka.js';

export const TXGATE_BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'txgate.cjs');

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
}

export class GatewayProcess {
  readonly logs: string[] = [];
  readonly label: string;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly host: string;

  constructor(opts: GatewayProcessOptions) {
    this.label = opts.label;
    this.port = opts.port;
    this.host = opts.host ?? '127.0.0.1';
    // Flags decide everything: no TXGATE_* from the caller's environment, and the CLI sizes libuv's pool.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TXGATE_') && k !== 'UV_THREADPOOL_SIZE'));
    this.child = spawn(
      process.execPath,
      [
        TXGATE_BIN,
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
    const collect = (d: Buffer) => this.logs.push(...d.toString().split('\n').filter((l) => l !== ''));
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

  /** Resolves once /readyz answers 200; rejects if the process exits first or the deadline passes. */
  async ready(timeoutMs = 180_000): Promise<void> {
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
      { timeoutMs, intervalMs: 200, what: `${this.label} to answer /readyz with 200` },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; last /readyz answer: ${lastAnswer}`);
    });
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
}
