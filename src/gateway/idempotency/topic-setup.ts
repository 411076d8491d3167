/**
 * The store's start-up steps against Kafka: connecting its readers, creating the idempotency
 * topic when it is missing (and advising on one that exists without time retention), waiting
 * for its partitions' leaders, and listing where loading ends. Each step is retried until the
 * start-up deadline (startup.ts), since a cluster that has just started, or a topic created a
 * moment ago, fails requests for a while.
 */
import { PoolClosedError } from '../../errors.js';
import { IdempotencyUnavailableError } from '../../errors.js';
import { retryStep, type StartContext } from '../startup.js';
import type { IdempotencyLog, Isolation, LogReader, TopicAdmin } from './ports.js';
import { topicRetentionConfig } from './retention.js';
import type { Logger } from './store.js';

/** What every step needs. */
export interface TopicSetup {
  ctx: StartContext;
  topic: string;
  admin: TopicAdmin;
  logger: Logger;
  /** The store was closed meanwhile: stop. */
  closed(): boolean;
}

export function closedWhileStarting(): PoolClosedError {
  return new PoolClosedError('the idempotency store was closed while starting');
}

/**
 * Opens a reader, a new one per attempt, until the start-up deadline. One that connects after
 * the store closed is closed here: the store's close() could not see it.
 */
export function openTailReader(s: TopicSetup, log: IdempotencyLog, isolation: Isolation, step: string): Promise<LogReader> {
  return retryStep(s.ctx, step, async (timeoutMs) => {
    if (s.closed()) throw closedWhileStarting();
    const reader = await log.openReader({
      topic: s.topic,
      isolation,
      use: 'tail',
      timeoutMs,
      onError: (err) => s.logger.warn({ err: String(err), isolation }, 'idempotency consumer error'),
    });
    if (s.closed()) {
      await reader.close();
      throw closedWhileStarting();
    }
    return reader;
  });
}

/** Creates the topic if it is missing; true if this call created it (or another instance did, just now). */
export async function ensureTopic(s: TopicSetup, spec: { partitions: number; brokers: number; retentionMs: number }): Promise<boolean> {
  const replication = Math.max(1, Math.min(3, spec.brokers));
  const config = topicRetentionConfig(spec.retentionMs);
  const created = await retryStep(s.ctx, `creating the idempotency topic ${s.topic}`, async (timeoutMs) => {
    if (s.closed()) throw closedWhileStarting();
    // Listed first: a timed-out create may have created it, and an existing topic needs no
    // permission to create topics.
    if (await s.admin.topicExists(s.topic, timeoutMs)) return false;
    // Existing by now means another instance won the race: created with the same settings.
    await s.admin.createTopic({ topic: s.topic, partitions: spec.partitions, replicationFactor: replication, config }, timeoutMs);
    return true;
  });
  if (created) s.logger.info({ topic: s.topic, partitions: spec.partitions, replication, config }, 'created the idempotency topic');
  return created;
}

/**
 * Warns when an existing topic has no time-based retention (created by a txgate without it, or
 * by hand): the broker then keeps every key forever. Changing the topic is left to the operator:
 * the warning names the command.
 */
export async function checkTopicRetention(s: TopicSetup, retentionMs: number): Promise<void> {
  const config = topicRetentionConfig(retentionMs);
  const command =
    `kafka-configs.sh --bootstrap-server ${s.admin.bootstrapServers ?? '<brokers>'} --alter --entity-type topics ` +
    `--entity-name ${s.topic} --add-config 'cleanup.policy=[compact,delete],retention.ms=${config['retention.ms']},segment.ms=${config['segment.ms']}'`;
  const should = `cleanup.policy=compact,delete and retention.ms of at least ${config['retention.ms']}`;
  let policy;
  try {
    // Only advice: errors of a topic still spreading are retried, but for 30 s at most.
    policy = await retryStep(
      { ...s.ctx, deadline: Math.min(s.ctx.deadline, Date.now() + 30_000) },
      `checking the retention of the idempotency topic ${s.topic}`,
      async (timeoutMs) => {
        if (s.closed()) throw closedWhileStarting();
        return s.admin.retentionPolicy(s.topic, timeoutMs);
      },
    );
  } catch (err) {
    if (s.ctx.signal?.aborted || err instanceof PoolClosedError) throw err;
    const last = (err as { lastError?: { code?: unknown } }).lastError;
    s.logger.info(
      { topic: s.topic, code: last?.code ?? -1, command },
      `could not check the retention of the idempotency topic ${s.topic}; it should have ${should}`,
    );
    return;
  }
  if (policy.kind === 'compact-only') {
    s.logger.warn(
      { topic: s.topic, retentionMs, command },
      `the idempotency topic ${s.topic} has no time-based retention (cleanup.policy without "delete"), so Kafka keeps ` +
        `every idempotency key forever and each start reads them all; this gateway forgets keys after ${retentionMs} ms ` +
        `regardless. To let the broker delete them too, run (with --command-config for TLS/SASL): ${command}`,
    );
  } else if (policy.kind === 'unknown') {
    s.logger.warn(
      { topic: s.topic, command },
      `could not check the retention of the idempotency topic ${s.topic}: ${policy.reason}. Make sure the topic has ${should}, e.g.: ${command}`,
    );
  }
}

/** The topic's partition count, once the reader's metadata has it and every partition has a leader. */
export function partitionCount(s: TopicSetup, reader: LogReader): Promise<number> {
  return retryStep(
    s.ctx,
    `waiting for the partition leaders of the idempotency topic ${s.topic}`,
    async (timeoutMs) => {
      if (s.closed()) throw closedWhileStarting();
      const layout = await reader.describe(Math.min(timeoutMs, 5_000));
      if (layout && layout.withoutLeader === 0) return layout.partitions;
      throw new IdempotencyUnavailableError(
        layout ? `the idempotency topic ${s.topic} has partitions without a leader` : `the broker does not know the idempotency topic ${s.topic} yet`,
      );
    },
    { initialBackoffMs: 200, maxBackoffMs: 1_000 },
  );
}

/** Each partition's last stable offset: where loading ends. */
export function stableOffsets(s: TopicSetup, partitions: number): Promise<number[]> {
  return retryStep(s.ctx, `listing the end offsets of the idempotency topic ${s.topic}`, async (timeoutMs) => {
    if (s.closed()) throw closedWhileStarting();
    return s.admin.endOffsets(s.topic, partitions, 'read_committed', timeoutMs);
  });
}
