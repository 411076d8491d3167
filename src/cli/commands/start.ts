/**
 * `txgate start` (what `npm start` runs): the one command a user needs. Brings up Kafka (the
 * configured brokers, or a local broker when none are configured, with a demo topic), serves the
 * gateway on it, prints how to use both, and on Ctrl-C / SIGTERM drains the gateway and stops the
 * local broker it started: ensureKafka() -> startGateway() -> waitForShutdown() -> close, release.
 */
import type { Command } from 'commander';
import { addGatewayOptions, resolveGatewayConfig, type GatewayOptionValues } from '../../gateway/config.js';
import { startGateway } from '../../gateway/server.js';
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
  /** Stops the local broker if this call started it; otherwise does nothing. */
  release(): Promise<void>;
}

/**
 * TXGATE_BROKERS (comma-separated host:port) when set; otherwise the local broker
 * (KAFKA_PORT, KAFKA_LOCAL_STATE and the other kafka-local.sh variables apply), started if needed.
 */
export async function ensureKafka(configured = process.env.TXGATE_BROKERS): Promise<KafkaTarget> {
  const brokers = configured?.trim();
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
  Kafka    bootstrap.servers = ${b}${kafka.local ? ' (local broker started by txgate)' : ''}, topic "${DEMO_TOPIC}" (${DEMO_PARTITIONS} partitions)
  Gateway  ${gatewayUrl}   (GET /openapi.json, /healthz, /readyz, /metrics)

Commit one transaction (both records, or neither):
  curl -sS -X POST ${gatewayUrl}/v1/transactions -H 'content-type: application/json' \\
       -H 'idempotency-key: demo-1'${authOn ? " -H 'authorization: Bearer <token>'" : ''} \\
       -d '${body}'

Read it back (committed records only):
  kcat -b ${b} -t ${DEMO_TOPIC} -C -e -X isolation.level=read_committed

Press Ctrl-C to stop${kafka.local ? ' the gateway and the local broker' : ''}.`);
}

async function runStart(values: GatewayOptionValues): Promise<void> {
  const kafka = await ensureKafka(values.brokers);
  try {
    await ensureTopics(kafka.bootstrap, [{ topic: DEMO_TOPIC, partitions: DEMO_PARTITIONS }]);
    let config;
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
    const gateway = await startGateway(config);
    printHowTo(kafka, gateway.url, config.apiKeys.length > 0);
    const broker = kafka.local ? new LocalKafka() : undefined;
    try {
      await waitForShutdown(broker ? () => broker.isRunning() : undefined);
    } finally {
      const clean = await gateway.close();
      process.exitCode = clean ? 0 : 1;
    }
  } finally {
    await kafka.release();
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
    await runStart(values);
    // Everything is closed; exit even if a native handle lingers.
    process.exit(process.exitCode ?? 0);
  });
}
