/**
 * One local KRaft broker (combined broker + controller) on 127.0.0.1, driven through
 * scripts/kafka-local.sh. Used by `txgate start`, scripts/test.sh's counterpart in tests, and
 * failure tests that kill and restart a broker.
 */
import path from 'node:path';
import { baseEnv, KafkaLauncherError, runLauncher, type LauncherOptions } from './launcher.js';

export const LOCAL_HOST = '127.0.0.1';
export const DEFAULT_LOCAL_PORT = 19092;

export interface LocalKafkaOptions extends LauncherOptions {
  /** Broker port (KAFKA_PORT); the controller listens on port + 1 unless controllerPort is set. */
  port?: number | undefined;
  controllerPort?: number | undefined;
}

/** What `kafka-local.sh status` says about the single node. */
export interface LocalKafkaStatus {
  running: boolean;
  /** The broker's pid, when running. */
  pid?: number;
  /**
   * The process recorded as the broker's owner (the one that stops it on exit), when it has one:
   * `alive` false means the owner ended without stopping it (killed, crashed).
   */
  owner?: { pid: number; alive: boolean };
}

export class LocalKafka {
  constructor(private readonly opts: LocalKafkaOptions = {}) {}

  private env(): Record<string, string | undefined> {
    const env = baseEnv(this.opts);
    if (this.opts.port !== undefined) env.KAFKA_PORT = String(this.opts.port);
    if (this.opts.controllerPort !== undefined) env.KAFKA_CONTROLLER_PORT = String(this.opts.controllerPort);
    return env;
  }

  private run(command: string, ...args: string[]): Promise<string> {
    return runLauncher(command, args, this.env(), { detached: this.opts.detached });
  }

  /** The broker port: the option, else KAFKA_PORT from the environment, else the script's default. */
  get port(): number {
    return this.opts.port ?? (Number(this.opts.env?.KAFKA_PORT ?? process.env.KAFKA_PORT) || DEFAULT_LOCAL_PORT);
  }

  get bootstrap(): string {
    return `${LOCAL_HOST}:${this.port}`;
  }

  /** The node's directory (data, server.properties, server.out, pid), when stateDir was given. */
  get nodeDir(): string | undefined {
    return this.opts.stateDir === undefined ? undefined : path.join(this.opts.stateDir, 'single');
  }

  /**
   * Formats a fresh node and starts it, resolving with the bootstrap address once the broker
   * serves requests. If this node is already running, resolves at once (the script's start is idempotent).
   */
  async start(opts: { owner?: number } = {}): Promise<string> {
    const env = { ...this.env(), ...(opts.owner !== undefined ? { KAFKA_OWNER_PID: String(opts.owner) } : {}) };
    return lastLine(await runLauncher('start', [], env, { detached: this.opts.detached }));
  }

  /** Stops the node (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT) and deletes its data. */
  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    await runLauncher('stop', [], { ...this.env(), ...(opts.keepData ? { KAFKA_KEEP_DATA: '1' } : {}) }, { detached: this.opts.detached });
  }

  /** Records process `pid` as the owner of the running node (see LocalKafkaStatus.owner). */
  async claim(pid: number = process.pid): Promise<void> {
    await this.run('own', String(pid));
  }

  async status(): Promise<LocalKafkaStatus> {
    let out: string;
    try {
      out = await this.run('status');
    } catch (err) {
      if (err instanceof KafkaLauncherError && err.exitCode === 1 && err.stdout.trim() === 'stopped') return { running: false };
      throw err;
    }
    const pid = /\bpid=(\d+)/.exec(out)?.[1];
    const owner = /\bowner=(\d+) \((alive|gone)\)/.exec(out);
    return {
      running: true,
      ...(pid ? { pid: Number(pid) } : {}),
      ...(owner ? { owner: { pid: Number(owner[1]), alive: owner[2] === 'alive' } } : {}),
    };
  }

  /** Kills the node, keeping its data: SIGKILL (a crash) by default, SIGTERM with graceful. */
  async kill(opts: { graceful?: boolean } = {}): Promise<void> {
    await this.run('kill', ...(opts.graceful ? ['--term'] : []));
  }

  /** Starts a killed node again on its existing data. */
  async restart(): Promise<string> {
    return lastLine(await this.run('restart'));
  }

  async isRunning(): Promise<boolean> {
    try {
      await this.run('status');
      return true;
    } catch {
      return false;
    }
  }

  /** The broker's pid, or undefined when it is not running. */
  async pid(): Promise<number | undefined> {
    try {
      const m = /\bpid=(\d+)/.exec(await this.run('status'));
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }
}

function lastLine(out: string): string {
  return out.split('\n').pop() ?? out;
}
