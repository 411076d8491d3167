/**
 * Helpers for integration tests against the real broker scripts/test.sh starts for the run.
 * Tests share that broker, so every test works on its own topics (uniqueName).
 */
import { randomBytes } from 'node:crypto';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { runLauncher } from '../../src/local-kafka/launcher.js';
import { ensureTopics, type TopicSpec } from '../../src/local-kafka/topics.js';

/** The shared test broker's bootstrap address (host:port), from TXGATE_TEST_BOOTSTRAP. */
export function testBootstrap(): string {
  const b = process.env.TXGATE_TEST_BOOTSTRAP?.trim();
  if (!b) {
    throw new Error(
      'TXGATE_TEST_BOOTSTRAP is not set: integration tests need the broker scripts/test.sh starts. ' +
        'Run them with `npm test` (or `bash scripts/test.sh test/integration/<file>.test.ts`), ' +
        'or point TXGATE_TEST_BOOTSTRAP at a running broker (e.g. 127.0.0.1:19092).',
    );
  }
  return b;
}

let counter = 0;
/** A name no other test (in this or a parallel process, or an earlier run) uses: topics, ids, groups. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${randomBytes(4).toString('hex')}`;
}

/** Creates new topics (failing if one exists) and waits until every partition has a leader. */
export async function createTopics(
  bootstrap: string,
  topics: Array<{ topic: string; partitions?: number; replicationFactor?: number; config?: Record<string, string> }>,
): Promise<void> {
  await ensureTopics(bootstrap, topics as TopicSpec[], { failIfExists: true });
}

/**
 * Every transactional id the cluster's coordinators know (Kafka's TransactionsCommand `list`,
 * about 2-3 s: it starts a JVM). Ids stay known until transactional.id.expiration.ms passes.
 */
export async function listTransactionalIds(bootstrap: string): Promise<string[]> {
  const out = await runLauncher('transactions', ['list'], { KAFKA_BOOTSTRAP: bootstrap });
  return out
    .split('\n')
    .slice(1) // header: TransactionalId Coordinator ProducerId TransactionState
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((id) => id !== '');
}

/** Polls `condition` until it returns a truthy value (returned) or the deadline passes (throws). */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const v = await condition();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs ?? 30_000} ms waiting for ${opts.what ?? 'a condition'}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

export interface ConsumedRecord {
  topic: string;
  partition: number;
  /** A decimal string, as in RecordMetadata. */
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  /** In wire order; a key may repeat. */
  headers: Array<{ key: string; value: Buffer }>;
  timestamp: number | undefined;
}

export type Isolation = 'read_committed' | 'read_uncommitted';

export interface ConsumeAllOptions {
  /** Default read_committed. */
  isolation?: Isolation;
  /**
   * Keep reading until at least this many records arrived (for records still being written);
   * without it, reading stops at the end offsets as they were when the call began.
   */
  expected?: number;
  /** Default 30 s. Rejects when the end is not reached in time. */
  timeoutMs?: number;
}

interface Partition {
  topic: string;
  partition: number;
}

const key = (p: Partition): string => `${p.topic}/${p.partition}`;

/**
 * Reads every record of the topics from the beginning until each partition's end offset
 * (read_committed: the last stable offset; read_uncommitted: the high watermark) is reached,
 * as signalled by the consumer's partition-EOF events. Records come back ordered by topic,
 * partition and offset. No consumer group offsets are committed.
 */
export async function consumeAll(bootstrap: string, topics: string | string[], opts: ConsumeAllOptions = {}): Promise<ConsumedRecord[]> {
  const topicList = Array.isArray(topics) ? topics : [topics];
  const isolation = opts.isolation ?? 'read_committed';
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;

  const { partitions, endOffsets } = await describeEnds(bootstrap, topicList, isolation, timeoutMs);

  const consumer = new RdKafka.KafkaConsumer(
    {
      'bootstrap.servers': bootstrap,
      'group.id': uniqueName('txgate-test-consume-all'),
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': isolation,
      'auto.offset.reset': 'earliest',
      'fetch.wait.max.ms': 50,
    },
    {},
  );
  const records: ConsumedRecord[] = [];
  const eofAt = new Map<string, number>();
  consumer.on('partition.eof', (e) => {
    eofAt.set(key(e), Math.max(e.offset, eofAt.get(key(e)) ?? -1));
  });
  await new Promise<void>((resolve, reject) => {
    consumer.connect({ timeout: timeoutMs }, (err) => (err ? reject(err) : resolve()));
  });
  try {
    consumer.setDefaultConsumeTimeout(100);
    consumer.assign(partitions.map((p) => ({ ...p, offset: -2 /* OFFSET_BEGINNING */ })));
    const done = (): boolean =>
      partitions.every((p) => (eofAt.get(key(p)) ?? -1) >= (endOffsets.get(key(p)) ?? 0)) &&
      (opts.expected === undefined || records.length >= opts.expected);
    while (!done()) {
      if (Date.now() > deadline) {
        throw new Error(
          `consumeAll(${topicList.join(', ')}, ${isolation}) timed out after ${timeoutMs} ms with ${records.length} records` +
            (opts.expected !== undefined ? ` of ${opts.expected} expected` : '') +
            `; per partition: ${await progressReport(bootstrap, topicList, partitions, records, eofAt)}`,
        );
      }
      const batch = await new Promise<RdKafka.Message[]>((resolve, reject) => {
        consumer.consume(1000, (err, msgs) => (err ? reject(err) : resolve(msgs)));
      });
      for (const m of batch) records.push(toRecord(m));
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
  return records.sort(
    (a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)),
  );
}

async function describeEnds(
  bootstrap: string,
  topics: string[],
  isolation: Isolation,
  timeoutMs: number,
): Promise<{ partitions: Partition[]; endOffsets: Map<string, number> }> {
  const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': bootstrap, 'client.id': 'txgate-test-consume-all' });
  try {
    const described = await new Promise<RdKafka.TopicDescription[]>((resolve, reject) => {
      admin.describeTopics(topics, { timeout: timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
    });
    const partitions: Partition[] = [];
    for (const t of described) {
      if (t.error) throw new Error(`cannot read topic ${t.name}: ${t.error.message}`);
      for (const p of t.partitions) partitions.push({ topic: t.name, partition: p.partition });
    }
    return { partitions, endOffsets: await listEnds(admin, partitions, isolation, timeoutMs) };
  } finally {
    admin.disconnect();
  }
}

async function listEnds(admin: RdKafka.IAdminClient, partitions: Partition[], isolation: Isolation, timeoutMs: number): Promise<Map<string, number>> {
  const ends = await new Promise<RdKafka.ListOffsetsResult[]>((resolve, reject) => {
    admin.listOffsets(
      partitions.map((p) => ({ ...p, offset: RdKafka.OffsetSpec.LATEST })),
      {
        timeout: timeoutMs,
        isolationLevel: isolation === 'read_committed' ? RdKafka.IsolationLevel.READ_COMMITTED : RdKafka.IsolationLevel.READ_UNCOMMITTED,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
  const endOffsets = new Map<string, number>();
  for (const e of ends) {
    if (e.error) throw new Error(`cannot list offsets of ${key(e)}: ${e.error.message}`);
    endOffsets.set(key(e), e.offset);
  }
  return endOffsets;
}

/**
 * For a timeout message: what was read, how far, and where the ends are now. A last stable
 * offset below the high watermark means a transaction is still open on that partition.
 */
async function progressReport(
  bootstrap: string,
  topics: string[],
  partitions: Partition[],
  records: ConsumedRecord[],
  eofAt: Map<string, number>,
): Promise<string> {
  let lso = new Map<string, number>();
  let hw = new Map<string, number>();
  try {
    ({ endOffsets: lso } = await describeEnds(bootstrap, topics, 'read_committed', 5000));
    ({ endOffsets: hw } = await describeEnds(bootstrap, topics, 'read_uncommitted', 5000));
  } catch {
    // best effort: the report is still useful without the current ends
  }
  return partitions
    .map((p) => {
      const n = records.filter((r) => r.topic === p.topic && r.partition === p.partition).length;
      return `${key(p)}: ${n} records, reached ${eofAt.get(key(p)) ?? 'no end'}, now LSO ${lso.get(key(p)) ?? '?'} HW ${hw.get(key(p)) ?? '?'}`;
    })
    .join('; ');
}

function toRecord(m: RdKafka.Message): ConsumedRecord {
  const headers: Array<{ key: string; value: Buffer }> = [];
  for (const h of m.headers ?? []) {
    for (const [k, v] of Object.entries(h)) headers.push({ key: k, value: Buffer.isBuffer(v) ? v : Buffer.from(v) });
  }
  return {
    topic: m.topic,
    partition: m.partition,
    offset: String(m.offset),
    key: m.key == null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(m.key),
    value: m.value,
    headers,
    timestamp: m.timestamp,
  };
}
