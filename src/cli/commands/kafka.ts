/** `txgate kafka <command> [args...]`: passes straight through to scripts/kafka-local.sh. */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { KAFKA_LOCAL_SCRIPT } from '../../local-kafka/launcher.js';

export function register(program: Command): void {
  program
    .command('kafka')
    .description(
      'local Kafka launcher (scripts/kafka-local.sh): start | stop | status | kill | restart | bootstrap | ' +
        'cluster-start | cluster-stop | cluster-status | node-kill N | node-start N | topics ... | transactions ... | perf-txn | fetch',
    )
    .argument('[command]', 'launcher command (none: print its usage)')
    .argument('[args...]', 'arguments for the launcher command')
    .helpOption(false)
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (command: string | undefined, args: string[]) => {
      process.exitCode = await passThrough([...(command ? [command] : []), ...args]);
    });
}

function passThrough(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [KAFKA_LOCAL_SCRIPT, ...args], { stdio: 'inherit' });
    // Ctrl-C reaches the script through the terminal's process group; do not die before it does
    const ignore = (): void => {};
    process.on('SIGINT', ignore);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}
