/**
 * The broker's own view of transactions after a run, through Kafka's TransactionsCommand (run by
 * the local launcher, scripts/kafka-local.sh, which needs Java and the cached Kafka jars):
 * - `list`: every transactional id the coordinators hold, with its state. Ours (by prefix) must
 *   all be settled, none Ongoing or Prepare*; their number shows whether ids are pooled or leak
 *   (one id per request would grow the coordinator's state without bound);
 * - `find-hanging --broker-id N`: transactions left open on a partition that no coordinator will
 *   ever complete (they hold read_committed readers back forever).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runLauncher } from '../local-kafka/launcher.js';

export interface TransactionListing {
  transactionalId: string;
  coordinator: number;
  producerId: string;
  state: string;
}

export interface HangingTransaction {
  topic: string;
  partition: number;
  producerId: string;
  producerEpoch: number;
  startOffset: string;
  durationMinutes: number;
}

export type TransactionsView =
  | {
      checked: true;
      prefix: string;
      /** Transactional ids with the prefix that the coordinators hold. */
      transactionalIds: number;
      /** Ours still Ongoing or Prepare* once the wait for them to settle ran out. */
      ongoing: TransactionListing[];
      /** Brokers searched (the replicas of the topics written). */
      brokers: number[];
      /** Hanging transactions on the topics written. */
      hanging: HangingTransaction[];
      /** Hanging transactions on other topics of those brokers (reported, not counted). */
      hangingOnOtherTopics: HangingTransaction[];
    }
  | { checked: false; reason: string };

/** States in which a transaction is still open or completing; the rest are settled. */
const OPEN_STATES = new Set(['Ongoing', 'PrepareCommit', 'PrepareAbort', 'PrepareEpochFence']);

export function isOpenState(state: string): boolean {
  return OPEN_STATES.has(state);
}

/** Rows of a whitespace-separated table with a header line; empty lines skipped. */
function rows(stdout: string, header: string): string[][] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith(header))
    .map((l) => l.split(/\s+/));
}

/** `transactions list`: TransactionalId Coordinator ProducerId TransactionState. */
export function parseTransactionsList(stdout: string): TransactionListing[] {
  return rows(stdout, 'TransactionalId').map(([transactionalId = '', coordinator = '', producerId = '', state = '']) => ({
    transactionalId,
    coordinator: Number(coordinator),
    producerId,
    state,
  }));
}

/** `transactions find-hanging`: Topic Partition ProducerId ProducerEpoch CoordinatorEpoch StartOffset LastTimestamp Duration(min). */
export function parseFindHanging(stdout: string): HangingTransaction[] {
  return rows(stdout, 'Topic').map(([topic = '', partition = '', producerId = '', epoch = '', , startOffset = '', , duration = '']) => ({
    topic,
    partition: Number(partition),
    producerId,
    producerEpoch: Number(epoch),
    startOffset,
    durationMinutes: Number(duration),
  }));
}

export async function listTransactions(bootstrap: string): Promise<TransactionListing[]> {
  return parseTransactionsList(await runLauncher('transactions', ['list'], { KAFKA_BOOTSTRAP: bootstrap }));
}

export async function findHanging(bootstrap: string, brokerId: number): Promise<HangingTransaction[]> {
  return parseFindHanging(await runLauncher('transactions', ['find-hanging', '--broker-id', String(brokerId)], { KAFKA_BOOTSTRAP: bootstrap }));
}

/** Why Kafka's tools cannot run here, or undefined when they can (Java on PATH). */
export function launcherUnavailable(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  if (!dirs.some((d) => existsSync(path.join(d, 'java')))) return 'java is not on PATH (Kafka\'s TransactionsCommand needs Java 17+)';
  return undefined;
}

export interface CheckTransactionsOptions {
  bootstrap: string;
  /** Transactional ids that are ours start with this. */
  prefix: string;
  /** Brokers to search for hanging transactions. */
  brokers: number[];
  /** Topics whose hanging transactions count. */
  topics: string[];
  /**
   * How long ours may take to settle: a commit completes asynchronously after the client's
   * EndTxn returns (the coordinator writes the markers, then CompleteCommit), so a listing right
   * after the last 200 can show PrepareCommit for a moment.
   */
  settleMs?: number | undefined;
}

export async function checkTransactions(opts: CheckTransactionsOptions): Promise<TransactionsView> {
  const deadline = Date.now() + (opts.settleMs ?? 30_000);
  let ours: TransactionListing[];
  for (;;) {
    ours = (await listTransactions(opts.bootstrap)).filter((t) => t.transactionalId.startsWith(opts.prefix));
    if (!ours.some((t) => isOpenState(t.state)) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const hanging: HangingTransaction[] = [];
  const elsewhere: HangingTransaction[] = [];
  const topics = new Set(opts.topics);
  for (const broker of opts.brokers) {
    for (const h of await findHanging(opts.bootstrap, broker)) (topics.has(h.topic) ? hanging : elsewhere).push(h);
  }
  return {
    checked: true,
    prefix: opts.prefix,
    transactionalIds: ours.length,
    ongoing: ours.filter((t) => isOpenState(t.state)),
    brokers: opts.brokers,
    hanging,
    hangingOnOtherTopics: elsewhere,
  };
}
