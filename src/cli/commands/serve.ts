/**
 * `txgate serve`: the HTTP gateway on an existing Kafka cluster. Every option has a TXGATE_*
 * environment variable (listed by `txgate serve --help`).
 */
import type { Command } from 'commander';
import { addGatewayOptions, resolveGatewayConfig, type GatewayOptionValues } from '../../gateway/config.js';
import { runGateway } from '../../gateway/run.js';
import { TxGateError } from '../../errors.js';

export function register(program: Command): void {
  const serve = program
    .command('serve')
    .description('run the HTTP gateway: each POST /v1/transactions becomes one atomic Kafka transaction')
    .addHelpText(
      'after',
      `
Examples:
  txgate serve --brokers 127.0.0.1:19092
  TXGATE_BROKERS=kafka:9092 TXGATE_API_KEYS='orders:<token>:orders,audit.*' txgate serve --host 0.0.0.0
  txgate serve --brokers b1:9093 --kafka-prop security.protocol=SASL_SSL --kafka-prop sasl.mechanisms=PLAIN \\
               --kafka-prop sasl.username=u --kafka-prop sasl.password=p`,
    );
  addGatewayOptions(serve).action(async (values: GatewayOptionValues) => {
    let config;
    try {
      config = resolveGatewayConfig(values);
    } catch (err) {
      if (err instanceof TxGateError) {
        console.error(`txgate serve: ${err.message}`);
        process.exit(2);
      }
      throw err;
    }
    try {
      await runGateway(config);
    } catch (err) {
      console.error(`txgate serve: could not start: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    }
    // Everything is closed; exit even if a native handle lingers.
    process.exit(process.exitCode ?? 0);
  });
}
