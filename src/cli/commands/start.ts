/**
 * `txgate start`: the one command a user runs. Brings up Kafka (the configured brokers, or a
 * local broker when none are configured), then stays in the foreground until Ctrl-C / SIGTERM
 * and stops the local broker it started.
 *
 * The steps are separate functions so the gateway can be served on the broker once it is up:
 * ensureKafka() -> (serve the gateway here) -> waitForShutdown() -> release().
 */
import type { Command } from 'commander';
import { LocalKafka } from '../../local-kafka/single-node.js';
import { ensureTopics } from '../../local-kafka/topics.js';

export const DEMO_TOPIC = 'demo';
export const DEMO_PARTITIONS = 3;

export interface KafkaTarget {
  /** bootstrap.servers for clients. */
  bootstrap: string;
  /** true when the broker is a local one run by kafka-local.sh. */
  local: boolean;
  /** Stops the local broker if this call started it; otherwise does nothing. */
  release(): Promise<void>;
}

/**
 * TXGATE_BROKERS (comma-separated host:port) when set; otherwise the local broker
 * (KAFKA_PORT, KAFKA_LOCAL_STATE and the other kafka-local.sh variables apply), started if needed.
 */
export async function ensureKafka(): Promise<KafkaTarget> {
  const brokers = process.env.TXGATE_BROKERS?.trim();
  if (brokers) return { bootstrap: brokers, local: false, release: async () => {} };

  const broker = new LocalKafka();
  const wasRunning = await broker.isRunning();
  if (!wasRunning) log(`starting a local Kafka broker on ${broker.bootstrap} (about 5-15 s)`);
  const bootstrap = await broker.start();
  let released = false;
  return {
    bootstrap,
    local: true,
    release: async () => {
      if (wasRunning || released) return;
      released = true;
      log('stopping the local Kafka broker');
      await broker.stop();
    },
  };
}

/** Resolves on the first SIGINT or SIGTERM; rejects when `alive` reports the broker gone. */
export function waitForShutdown(alive?: () => Promise<boolean>): Promise<NodeJS.Signals> {
  return new Promise((resolve, reject) => {
    const timer = alive
      ? setInterval(() => {
          alive().then(
            (ok) => ok || finish(new Error('the local Kafka broker stopped unexpectedly')),
            (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
          );
        }, 5000)
      : setInterval(() => {}, 1 << 30); // keeps the event loop alive while we wait
    const onSignal = (signal: NodeJS.Signals): void => finish(signal);
    function finish(outcome: NodeJS.Signals | Error): void {
      clearInterval(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    }
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

function log(msg: string): void {
  console.error(`txgate: ${msg}`);
}

function printHowTo(kafka: KafkaTarget): void {
  const b = kafka.bootstrap;
  console.log(`
Kafka is ready.
  bootstrap.servers = ${b}
  topic "${DEMO_TOPIC}" (${DEMO_PARTITIONS} partitions)

Try it with kcat:
  echo hello | kcat -b ${b} -t ${DEMO_TOPIC} -P
  kcat -b ${b} -t ${DEMO_TOPIC} -C -e

${kafka.local ? 'Press Ctrl-C to stop the broker.' : 'Press Ctrl-C to stop.'}`);
}

async function runStart(): Promise<void> {
  const kafka = await ensureKafka();
  try {
    await ensureTopics(kafka.bootstrap, [{ topic: DEMO_TOPIC, partitions: DEMO_PARTITIONS }]);
    printHowTo(kafka);
    const broker = kafka.local ? new LocalKafka() : undefined;
    await waitForShutdown(broker ? () => broker.isRunning() : undefined);
  } finally {
    await kafka.release();
  }
}

export function register(program: Command): void {
  program
    .command('start')
    .description('bring up Kafka (a local broker unless TXGATE_BROKERS is set) and stay in the foreground until Ctrl-C')
    .action(runStart);
}
