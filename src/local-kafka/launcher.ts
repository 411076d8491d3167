/**
 * Runs scripts/kafka-local.sh, the single implementation of the local Kafka launcher. This module
 * only maps options to the script's environment and turns its failures into errors carrying the
 * script's own message (it says why: port taken, Java missing, broker exited...).
 */
import { execFile } from 'node:child_process';
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
export function runLauncher(command: string, args: string[], env: Record<string, string | undefined>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [KAFKA_LOCAL_SCRIPT, command, ...args],
      { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const code = typeof err.code === 'number' ? err.code : null;
          reject(new KafkaLauncherError(`kafka-local.sh ${command} failed: ${reason(stderr)}`, command, code, stderr, stdout));
        } else {
          resolve(stdout.trim());
        }
      },
    );
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
