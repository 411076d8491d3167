/**
 * Running the gateway as a process: shutdown on SIGINT, SIGTERM and SIGHUP (the first drains,
 * a later second one exits at once), and the exit code.
 */
import { performance } from 'node:perf_hooks';
import type { GatewayConfig } from './config.js';
import { startGateway, type StartGatewayOptions } from './server.js';

/**
 * One request to stop often arrives twice within milliseconds: a terminal's Ctrl-C signals the
 * whole foreground process group, and npm (`npm start`) forwards the SIGINT it got to its child
 * too. Within this window a repeat of the first signal is that duplicate, not a second request.
 */
export const DUPLICATE_SIGNAL_WINDOW_MS = 1_000;

export interface ShutdownSignalHandlers {
  /** The first SIGINT, SIGTERM or SIGHUP: shut down. */
  shutdown(signal: NodeJS.Signals): void;
  /** The first later signal that is not a duplicate of the first: the sender insists. Later signals are ignored. */
  hurry(signal: NodeJS.Signals): void;
  duplicateWindowMs?: number;
  /** Milliseconds on a monotonic clock (tests replace it). */
  now?: () => number;
}

/** SIGHUP too: a closed terminal must drain the gateway and stop what it started, not kill it. */
const SHUTDOWN_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Handles SIGINT, SIGTERM and SIGHUP until the returned function is called. While it is installed
 * none of them ends the process by Node's default action: the handlers decide.
 */
export function handleShutdownSignals(handlers: ShutdownSignalHandlers): () => void {
  const windowMs = handlers.duplicateWindowMs ?? DUPLICATE_SIGNAL_WINDOW_MS;
  const now = handlers.now ?? (() => performance.now());
  let first: { signal: NodeJS.Signals; at: number } | undefined;
  let hurried = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    const at = now();
    if (!first) {
      first = { signal, at };
      handlers.shutdown(signal);
      return;
    }
    if (hurried || (signal === first.signal && at - first.at < windowMs)) return;
    hurried = true;
    handlers.hurry(signal);
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  return () => {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, onSignal);
  };
}

/**
 * Starts the gateway and shuts it down on SIGINT, SIGTERM or SIGHUP, including one that arrives
 * while start-up is still retrying. Sets process.exitCode: 0 after a clean drain, 1 if the
 * deadline cut in-flight work short. A duplicate of the first signal (see
 * DUPLICATE_SIGNAL_WINDOW_MS) changes nothing; a later second signal exits at once, with 1.
 * Rejects with GatewayStartError when start-up gives up.
 */
export async function runGateway(config: GatewayConfig, options: StartGatewayOptions = {}): Promise<void> {
  const gateway = await startGateway(config, { ...options, waitUntilReady: false });
  let stopped: Promise<void> | undefined;
  await new Promise<void>((resolve, reject) => {
    const stopHandling = handleShutdownSignals({
      shutdown: (signal) => {
        gateway.app.log.info({ signal }, 'signal received');
        // Every step has its own deadline; this catches a step that ignores it (e.g. a native call
        // that never returns), so a stuck shutdown still ends and says where it stuck.
        const watchdog = setTimeout(() => {
          gateway.app.log.error({ step: gateway.shutdownStep() }, 'shutdown did not finish in time; exiting');
          process.exit(1);
        }, config.shutdownTimeoutMs + 15_000);
        stopped = gateway.close().then(
          (clean) => {
            clearTimeout(watchdog);
            process.exitCode = clean ? 0 : 1;
          },
          (err: unknown) => {
            clearTimeout(watchdog);
            gateway.app.log.error({ err }, 'shutdown failed');
            process.exitCode = 1;
          },
        );
        void stopped.then(() => {
          stopHandling();
          resolve();
        });
      },
      hurry: (signal) => {
        gateway.app.log.warn({ signal, step: gateway.shutdownStep() }, 'second signal: exiting without waiting');
        process.exit(1);
      },
    });
    // Start-up giving up ends the process; a close() on a signal while starting is not a failure.
    gateway.ready.catch((err: unknown) => {
      if (stopped) return;
      stopHandling();
      reject(err);
    });
  });
}
