/**
 * `txgate verify` as a library: prepare the topics, drive the load, then check — read every
 * topic back with read_committed, judge the records against the answers, and ask the broker
 * about transactions. The check phase runs on its own too (checkLoad), on a load's result.
 */
import { describeLagging, describeTopicPartitions, readTopics, waitForEndOffsets, type TopicPosition } from '../kafka/read-topic.js';
import { ensureTopics } from '../local-kafka/topics.js';
import { check } from './checker.js';
import { runLoad, type LoadOptions, type LoadResult } from './load.js';
import { runKeyPrefix } from './payload.js';
import { buildReport, type VerifyReport } from './report.js';
import { checkTransactions, launcherUnavailable, type TransactionsView } from './transactions.js';
import type { ReadRecord } from './types.js';

export interface CheckOptions {
  /** Bootstrap servers of the cluster the gateways write to. */
  brokers: string;
  /** Reading back may wait this long for the topics' ends (default 120 s). */
  readTimeoutMs?: number | undefined;
  /**
   * Ask Kafka's TransactionsCommand about ongoing and hanging transactions. 'auto' (default):
   * when the local launcher can run it (Java on PATH), and a launcher failure only skips the
   * check; true: a check that cannot run makes the verdict INCONCLUSIVE.
   */
  checkTransactions?: boolean | 'auto' | undefined;
  /** Our transactional ids start with this (default `txgate-`). */
  transactionalIdPrefix?: string | undefined;
  /** More transactional ids with the prefix than this is an anomaly (ids leak, e.g. one per request). */
  maxTransactionalIds?: number | undefined;
  /** How long open transactions of ours may take to settle after the load (default 30 s). */
  settleMs?: number | undefined;
}

export interface VerifyOptions extends LoadOptions, CheckOptions {
  /** Create missing topics with this many partitions (default: the topics must exist). */
  createTopicPartitions?: number | undefined;
}

export const CHECK_DEFAULTS = { readTimeoutMs: 120_000, transactionalIdPrefix: 'txgate-', settleMs: 30_000 } as const;

export async function runVerify(opts: VerifyOptions): Promise<VerifyReport> {
  await prepareTopics(opts.brokers, opts.topics, opts.createTopicPartitions);
  const load = await runLoad(opts);
  return checkLoad(load, opts);
}

/** Creates the topics (when asked) or checks they exist: the gateway never creates topics. */
export async function prepareTopics(brokers: string, topics: string[], createPartitions?: number): Promise<void> {
  if (createPartitions !== undefined) {
    await ensureTopics(brokers, topics.map((topic) => ({ topic, partitions: createPartitions })));
    return;
  }
  try {
    await describeTopicPartitions(brokers, topics);
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)} (create it first, or pass --create-topic)`, { cause: err });
  }
}

export async function checkLoad(load: LoadResult, opts: CheckOptions): Promise<VerifyReport> {
  const problems: string[] = [];
  const read = await readRunRecords(load, opts, problems);
  const result = check(load.requests, read);
  const transactions = await transactionsView(load, opts, problems);
  return buildReport({ load, check: result, transactions, maxTransactionalIds: opts.maxTransactionalIds, problems });
}

/**
 * This run's records in the topics, read_committed, once every acknowledged offset is readable:
 * a transaction left open elsewhere holds the last stable offset back, and committed records
 * behind it would look lost. If that wait runs out, what is readable is read and `problems` says
 * why acknowledged records may be missing.
 */
export async function readRunRecords(load: LoadResult, opts: CheckOptions, problems: string[] = []): Promise<ReadRecord[]> {
  const prefix = Buffer.from(runKeyPrefix(load.keyPrefix, load.runId));
  const topics = new Set(load.topics);
  const through: TopicPosition[] = [];
  for (const r of load.requests) {
    for (const o of r.outcomes) {
      if (o.kind !== 'acknowledged') continue;
      // a malformed 200 must not stall the read: the checker reports its records as misplaced
      for (const p of o.positions) if (topics.has(p.topic) && Number.isInteger(p.partition) && /^\d+$/.test(p.offset)) through.push(p);
    }
  }
  const timeoutMs = opts.readTimeoutMs ?? CHECK_DEFAULTS.readTimeoutMs;
  const lagging = await waitForEndOffsets(opts.brokers, load.topics, through, { isolation: 'read_committed', timeoutMs });
  if (lagging.length > 0) problems.push(describeLagging(lagging));
  const records = await readTopics(opts.brokers, load.topics, {
    isolation: 'read_committed',
    keep: (r) => r.key !== null && r.key.subarray(0, prefix.length).equals(prefix),
    timeoutMs,
  });
  return records.map((r) => ({
    topic: r.topic,
    partition: r.partition,
    offset: r.offset,
    key: r.key?.toString('utf8') ?? null,
    value: r.value?.toString('utf8') ?? null,
  }));
}

async function transactionsView(load: LoadResult, opts: CheckOptions, problems: string[]): Promise<TransactionsView> {
  const mode = opts.checkTransactions ?? 'auto';
  if (mode === false) return { checked: false, reason: 'not asked for' };
  const unavailable = launcherUnavailable();
  if (unavailable) {
    if (mode === true) problems.push(`transactions could not be checked: ${unavailable}`);
    return { checked: false, reason: unavailable };
  }
  try {
    const partitions = await describeTopicPartitions(opts.brokers, load.topics);
    const brokers = [...new Set(partitions.flatMap((p) => p.replicas))].sort((a, b) => a - b);
    return await checkTransactions({
      bootstrap: opts.brokers,
      prefix: opts.transactionalIdPrefix ?? CHECK_DEFAULTS.transactionalIdPrefix,
      brokers,
      topics: load.topics,
      settleMs: opts.settleMs,
    });
  } catch (err) {
    const reason = `Kafka's TransactionsCommand failed: ${err instanceof Error ? err.message : String(err)}`;
    if (mode === true) problems.push(`transactions could not be checked: ${reason}`);
    return { checked: false, reason };
  }
}
