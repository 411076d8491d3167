/**
 * `txgate start` (what `npm start` runs): the one command a user needs. Brings up Kafka (the
 * configured brokers, or a local broker when none are configured, with a demo topic), serves the
 * gateway on it, prints how to use both, and on Ctrl-C / SIGTERM drains the gateway and stops the
 * local broker it owns: ensureKafka() -> startGateway() -> wait for a signal -> close, release.
 *
 * The broker JVM runs in its own session, so nothing stops it but this process: a signal must
 * never end this process before the broker is stopped (see runStart).
 */
import type { Command } from 'commander';
import { addGatewayOptions, resolveGatewayConfig, type GatewayConfig, type GatewayOptionValues } from '../../gateway/config.js';
import { handleShutdownSignals } from '../../gateway/run.js';
import { startGateway, type RunningGateway } from '../../gateway/server.js';
import { TxGateError } from '../../errors.js';
import { LocalKafka } from '../../local-kafka/single-node.js';
import { ensureTopics } from '../../local-kafka/topics.js';

export const DEMO_TOPIC = 'demo';
export const DEMO_PARTITIONS = 3;

export interface KafkaTarget {
  /** bootstrap.servers for clients. */
  bootstrap: string;
  /** true when the broker is a local one run by kafka-local.sh. */
  local: boolean;
  /** true when this process stops the local broker on exit (it started it, or took it over). */
  owned: boolean;
  /** Stops the local broker if this process owns it; otherwise does nothing. */
  release(): Promise<void>;
  /** For a local broker: whether it still runs. */
  alive?: () => Promise<boolean>;
}

/**
 * TXGATE_BROKERS (comma-separated host:port) when set; otherwise the local broker
 * (KAFKA_PORT, KAFKA_LOCAL_STATE and the other kafka-local.sh variables apply), started if needed.
 *
 * Which local broker this process stops on exit goes by the owner kafka-local.sh records: one it
 * starts is its own; one whose owner is gone was left by an earlier `txgate start` that crashed,
 * and is taken over; one without an owner (`npm run kafka start`) or whose owner still runs is
 * used and left running. Each case is said on stderr.
 */
export async function ensureKafka(configured = process.env.TXGATE_BROKERS): Promise<KafkaTarget> {
  const brokers = configured?.trim();
  if (brokers) return { bootstrap: brokers, local: false, owned: false, release: async () => {} };

  // detached: a Ctrl-C to our process group must not kill a start or stop script half-way
  const broker = new LocalKafka({ detached: true });
  const found = await broker.status();
  let owned: boolean;
  if (!found.running) {
    log(`starting a local Kafka broker on ${broker.bootstrap} (about 5-15 s)`);
    try {
      await broker.start({ owner: process.pid });
    } catch (err) {
      // a broker that was launched but never became ready still runs: stop it, keeping its log
      if ((await broker.status().catch(() => undefined))?.owner?.pid === process.pid) await broker.stop({ keepData: true }).catch(() => {});
      throw err;
    }
    // start does nothing when another process started the broker since the status call
    const now = await broker.status();
    owned = now.owner?.pid === process.pid;
    if (!owned) log(`a local Kafka broker on ${broker.bootstrap} was started by someone else meanwhile: using it and leaving it running`);
  } else if (found.owner && !found.owner.alive) {
    await broker.claim(process.pid);
    owned = true;
    log(
      `found a local Kafka broker on ${broker.bootstrap} (pid ${found.pid}) left running by an earlier txgate start ` +
        `that crashed (pid ${found.owner.pid}): using it, and stopping it on exit`,
    );
  } else if (found.owner) {
    owned = false;
    log(`using the local Kafka broker on ${broker.bootstrap} (pid ${found.pid}) of another running txgate start (pid ${found.owner.pid}), which stops it`);
  } else {
    owned = false;
    log(
      `a local Kafka broker is already running on ${broker.bootstrap} (pid ${found.pid}), not started by txgate start ` +
        `(e.g. npm run kafka start): using it and leaving it running`,
    );
  }
  const bootstrap = broker.bootstrap;
  let released = false;
  return {
    bootstrap,
    local: true,
    owned,
    alive: () => broker.isRunning(),
    release: async () => {
      if (released) return;
      released = true;
      if (!owned) {
        log('leaving the local Kafka broker running (txgate start did not start it)');
        return;
      }
      log('stopping the local Kafka broker');
      try {
        await broker.stop();
      } catch (err) {
        // e.g. the stop script killed by a stray signal; stopping is idempotent, so once more
        log(`${err instanceof Error ? err.message : String(err)}; trying again`);
        await broker.stop();
      }
      log('the local Kafka broker stopped');
    },
  };
}

/** Rejects once `alive` reports the broker gone (checked every 5 s); never settles otherwise. */
function brokerLost(alive: () => Promise<boolean>, until: Promise<unknown>): Promise<never> {
  return new Promise((_, reject) => {
    const timer = setInterval(() => {
      alive().then(
        (ok) => ok || fail(new Error('the local Kafka broker stopped unexpectedly')),
        (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
      );
    }, 5000);
    const fail = (err: Error): void => {
      clearInterval(timer);
      reject(err);
    };
    void until.finally(() => clearInterval(timer));
  });
}

function log(msg: string): void {
  console.error(`txgate: ${msg}`);
}

function printHowTo(kafka: KafkaTarget, gatewayUrl: string, authOn: boolean): void {
  const b = kafka.bootstrap;
  const body = JSON.stringify({
    records: [
      { topic: DEMO_TOPIC, key: 'order-1', value: { item: 'book', qty: 1 } },
      { topic: DEMO_TOPIC, key: 'order-1', value: { event: 'reserved' } },
    ],
  });
  console.log(`
txgate is ready.
  Kafka    bootstrap.servers = ${b}${kafka.owned ? ' (local broker started by txgate)' : kafka.local ? ' (local broker, left running on exit)' : ''}, topic "${DEMO_TOPIC}" (${DEMO_PARTITIONS} partitions)
  Gateway  ${gatewayUrl}   (GET /openapi.json, /healthz, /readyz, /metrics)

Commit one transaction (both records, or neither):
  curl -sS -X POST ${gatewayUrl}/v1/transactions -H 'content-type: application/json' \\
       -H 'idempotency-key: demo-1'${authOn ? " -H 'authorization: Bearer <token>'" : ''} \\
       -d '${body}'

Read it back (committed records only):
  kcat -b ${b} -t ${DEMO_TOPIC} -C -e -X isolation.level=read_committed

Press Ctrl-C to stop${kafka.owned ? ' the gateway and the local broker' : ''}.`);
}

type Phase = 'starting' | 'running' | 'draining' | 'stopping';

/**
 * Signals are handled from the first moment (handleShutdownSignals), so none can end the process
 * by Node's default action while a broker runs:
 * - the first SIGINT/SIGTERM (and its duplicate: a terminal's Ctrl-C plus npm's forward of it)
 *   drains the gateway, then stops the broker; during startup, startup finishes first (a broker
 *   being started is stopped once it is up);
 * - a second one, later, stops waiting for in-flight requests (exit code 1) and goes on to stop
 *   the broker; it cannot skip that.
 */
async function runStart(values: GatewayOptionValues): Promise<void> {
  let phase: Phase = 'starting';
  let stopSignal: NodeJS.Signals | undefined;
  let requestStop!: () => void;
  const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
  let hurry!: () => void;
  const hurried = new Promise<void>((resolve) => (hurry = resolve));
  const stopHandling = handleShutdownSignals({
    shutdown: (signal) => {
      stopSignal = signal;
      if (phase === 'starting') log(`${signal}: stopping once startup is done`);
      else log(`${signal}: draining the gateway, then stopping (${signal} again: stop without waiting for in-flight requests)`);
      requestStop();
    },
    hurry: (signal) => {
      if (phase === 'draining') log(`${signal} again: not waiting for in-flight requests`);
      else if (phase === 'stopping') log(`${signal} again: waiting for the local Kafka broker to stop (it cannot be skipped)`);
      else log(`${signal} again: stopping once startup is done`);
      hurry();
    },
  });
  try {
    const kafka = await ensureKafka(values.brokers);
    try {
      if (stopSignal) return;
      await ensureTopics(kafka.bootstrap, [{ topic: DEMO_TOPIC, partitions: DEMO_PARTITIONS }]);
      let config: GatewayConfig;
      try {
        config = resolveGatewayConfig({ ...values, brokers: kafka.bootstrap });
      } catch (err) {
        if (err instanceof TxGateError) {
          console.error(`txgate start: ${err.message}`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
      if (stopSignal) return;
      // Listening at once; a signal while start-up still retries (a new topic spreading through
      // the cluster, say) closes it there instead of waiting up to --start-timeout-ms.
      const gateway = await startGateway(config, { waitUntilReady: false });
      try {
        const ready = await Promise.race([gateway.ready.then(() => true), stopRequested.then(() => false)]);
        if (ready && !stopSignal) {
          phase = 'running';
          printHowTo(kafka, gateway.url, config.apiKeys.length > 0);
          await Promise.race([stopRequested, ...(kafka.alive ? [brokerLost(kafka.alive, stopRequested)] : [])]);
        }
      } finally {
        phase = 'draining';
        process.exitCode = (await drain(gateway, config, hurried)) ? 0 : 1;
      }
    } finally {
      phase = 'stopping';
      await kafka.release();
    }
  } finally {
    stopHandling();
  }
}

/** gateway.close(), cut short by a second signal or a close that overruns its own deadline. */
async function drain(gateway: RunningGateway, config: GatewayConfig, hurried: Promise<void>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<boolean>((resolve) => {
    // every close step has a deadline; this catches one that ignores it (a native call that never returns)
    timer = setTimeout(() => {
      log(`the gateway did not stop in time (at: ${gateway.shutdownStep()}); going on`);
      resolve(false);
    }, config.shutdownTimeoutMs + 15_000);
  });
  try {
    const closed = gateway.close().catch((err: unknown) => {
      log(`stopping the gateway failed: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    });
    return await Promise.race([closed, hurried.then(() => false), overrun]);
  } finally {
    clearTimeout(timer);
  }
}

export function register(program: Command): void {
  const start = program
    .command('start')
    .description(
      'bring up Kafka (a local broker unless --brokers / TXGATE_BROKERS is set) with a demo topic, serve the gateway on it, ' +
        'and stay in the foreground until Ctrl-C',
    );
  addGatewayOptions(start).action(async (values: GatewayOptionValues) => {
    try {
      await runStart(values);
    } catch (err) {
      console.error(`txgate start: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    }
    // Everything is closed (the broker too, if it was ours); exit even if a native handle lingers.
    process.exit(process.exitCode ?? 0);
  });
}
