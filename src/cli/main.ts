/**
 * The `txgate` command line. Each file in ./commands/ adds its commands: it exports
 * `register(program: Command): void`. They are discovered here, so adding a command never
 * means editing this file. Run through bin/txgate.cjs (which sizes libuv's thread pool first).
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { Command } from 'commander';

export interface CommandModule {
  register(program: Command): void;
}

const COMMANDS_DIR = fileURLToPath(new URL('./commands/', import.meta.url));

async function loadCommands(): Promise<CommandModule[]> {
  const files = readdirSync(COMMANDS_DIR)
    .filter((f) => /\.[cm]?[jt]s$/.test(f) && !/\.(test|d)\.[cm]?[jt]s$/.test(f))
    .sort();
  const modules: CommandModule[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(path.join(COMMANDS_DIR, file)).href)) as Partial<CommandModule>;
    if (typeof mod.register !== 'function') throw new Error(`src/cli/commands/${file} does not export register(program)`);
    modules.push(mod as CommandModule);
  }
  return modules;
}

export async function buildProgram(): Promise<Command> {
  const program = new Command('txgate')
    .description('Transactional Kafka producer pool and HTTP gateway: one request, one atomic Kafka transaction')
    .showHelpAfterError()
    // options after a subcommand belong to it (lets `txgate kafka node-kill 2 --term` pass --term through)
    .enablePositionalOptions();
  for (const mod of await loadCommands()) mod.register(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  const program = await buildProgram();
  await program.parseAsync(argv);
}
