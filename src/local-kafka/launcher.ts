/**
 * Runs scripts/kafka-local.sh, the single implementation of the local Kafka launcher. This module
 * only maps options to the script's environment and turns its failures into errors carrying the
 * script's own message (it says why: port taken, Java missing, broker exited...).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const KAFKA_LOCAL_SCRIPT = fileURLToPath(new URL('../../scripts/kafka-local.sh', import.meta.url));

/** Options every launcher call understands; unset ones fall back to the script's defaults. */
export interface LauncherOptions {
  /** State directory (KAFKA_LOCAL_STATE): data, configs, logs and pid files live here. */
  stateDir?: string | undefined;
  /** Jar cache (KAFKA_LOCAL_CACHE). */
  cacheDir?: string | undefined;
  /** Any further variables for the script (KAFKA_HEAP_OPTS, KAFKA_EXTRA_PROPS, KAFKA_LOCAL_MVN_ARGS...). */
  env?: Record<string, string | undefined> | undefined;
  /**
   * Run each script in its own session and process group. A Ctrl-C in a terminal signals the
   * whole foreground process group: without this it kills a start or stop half-way, leaving a
   * broker running with nobody to stop it. The caller then owns the outcome (it awaits the script).
   */
  detached?: boolean | undefined;
}

export class KafkaLauncherError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(message);
    this.name = 'KafkaLauncherError';
  }
}

/** The script's own `kafka-local: ERROR: ...` line, else the tail of its stderr. */
function reason(stderr: string): string {
  const errors = stderr.split('\n').filter((l) => l.includes('ERROR:'));
  if (errors.length > 0) return errors.map((l) => l.replace(/^kafka-local: ERROR: /, '')).join('; ');
  return stderr.trim().split('\n').slice(-5).join('\n') || 'no output';
}

/** Runs `kafka-local.sh <command> <args...>` and resolves with its stdout (trimmed). */
export function runLauncher(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
  opts: { detached?: boolean | undefined } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    // spawn, not execFile: execFile does not pass `detached` on to the child.
    const child = spawn('bash', [KAFKA_LOCAL_SCRIPT, command, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: opts.detached === true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', (e) => reject(new KafkaLauncherError(`kafka-local.sh ${command} failed: ${e.message}`, command, null, '', '')));
    // 'close', not 'exit': all of the output has been read by then
    child.once('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (code === 0) {
        resolve(stdout.trim());
      } else {
        const why = signal ? `killed by ${signal}` : reason(stderr);
        reject(new KafkaLauncherError(`kafka-local.sh ${command} failed: ${why}`, command, code, stderr, stdout));
      }
    });
  });
}

export function baseEnv(opts: LauncherOptions): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...opts.env };
  if (opts.stateDir !== undefined) env.KAFKA_LOCAL_STATE = opts.stateDir;
  if (opts.cacheDir !== undefined) env.KAFKA_LOCAL_CACHE = opts.cacheDir;
  return env;
}

/** Resolves the Kafka jars into the cache (once; later calls return at once). Returns the lib dir. */
export function fetchKafkaJars(opts: LauncherOptions = {}): Promise<string> {
  return runLauncher('fetch', [], baseEnv(opts));
}
