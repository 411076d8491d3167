/**
 * Reads topics back from the beginning to their end offsets with a plain assigned consumer (no
 * consumer group offsets are committed). The verifier (src/verify) and the integration tests
 * share this one implementation, so what tests trust is what `txgate verify` checks with.
 */
import { randomBytes } from 'node:crypto';
import { KafkaAdmin } from './admin.js';
import { Kafka } from './native.js';
import type { KafkaProps } from './props.js';

export interface TopicRecord {
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

export interface TopicPosition {
  topic: string;
  partition: number;
  /** A decimal string. */
  offset: string;
}

export interface ReadTopicsOptions {
  /** Default read_committed. */
  isolation?: Isolation | undefined;
  /**
   * Keep reading until at least this many (kept) records arrived, for records still being
   * written; without it, reading stops at the end offsets as they were when the call began.
   */
  expected?: number | undefined;
  /** Records for which this returns false are read and dropped (the topic may hold other data). */
  keep?: ((record: TopicRecord) => boolean) | undefined;
  /** Default 30 s. Rejects when the end is not reached in time. */
  timeoutMs?: number | undefined;
  /** Consumer group id (never committed to); default a random one. */
  groupId?: string | undefined;
  /** Further librdkafka properties (TLS, SASL...). */
  clientConfig?: KafkaProps | undefined;
}

interface Partition {
  topic: string;
  partition: number;
}

export interface PartitionReplicas extends Partition {
  leader: number | null;
  /** Broker ids. */
  replicas: number[];
}

const key = (p: Partition): string => `${p.topic}/${p.partition}`;

/**
 * Reads every record of the topics from the beginning until each partition's end offset
 * (read_committed: the last stable offset; read_uncommitted: the high watermark) is reached,
 * as signalled by the consumer's partition-EOF events. Records come back ordered by topic,
 * partition and offset.
 */
export async function readTopics(bootstrap: string, topics: string | string[], opts: ReadTopicsOptions = {}): Promise<TopicRecord[]> {
  const topicList = Array.isArray(topics) ? topics : [topics];
  const isolation = opts.isolation ?? 'read_committed';
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const clientConfig = opts.clientConfig ?? {};

  const { partitions, endOffsets } = await describeEnds(bootstrap, topicList, isolation, timeoutMs, clientConfig);

  const consumer = new Kafka.KafkaConsumer(
    {
      ...clientConfig,
      'bootstrap.servers': bootstrap,
      'group.id': opts.groupId ?? `txgate-read-${process.pid}-${randomBytes(4).toString('hex')}`,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': isolation,
      'auto.offset.reset': 'earliest',
      'fetch.wait.max.ms': 50,
    },
    {},
  );
  const records: TopicRecord[] = [];
  const eofAt = new Map<string, number>();
  consumer.on('partition.eof', (e) => {
    eofAt.set(key(e), Math.max(e.offset, eofAt.get(key(e)) ?? -1));
  });
  await new Promise<void>((resolve, reject) => {
    consumer.connect({ timeout: Math.max(1000, deadline - Date.now()) }, (err) => (err ? reject(err) : resolve()));
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
          `reading ${topicList.join(', ')} (${isolation}) timed out after ${timeoutMs} ms with ${records.length} records` +
            (opts.expected !== undefined ? ` of ${opts.expected} expected` : '') +
            `; per partition: ${await progressReport(bootstrap, topicList, partitions, records, eofAt, clientConfig)}`,
        );
      }
      const batch = await new Promise<Kafka.Message[]>((resolve, reject) => {
        consumer.consume(1000, (err, msgs) => (err ? reject(err) : resolve(msgs)));
      });
      for (const m of batch) {
        const r = toRecord(m);
        if (!opts.keep || opts.keep(r)) records.push(r);
      }
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
  return records.sort(compareRecords);
}

function compareRecords(a: TopicRecord, b: TopicRecord): number {
  if (a.topic !== b.topic) return a.topic < b.topic ? -1 : 1;
  if (a.partition !== b.partition) return a.partition - b.partition;
  const d = BigInt(a.offset) - BigInt(b.offset);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** Every partition of the topics with its leader and replicas (broker ids). */
export async function describeTopicPartitions(
  bootstrap: string,
  topics: string[],
  opts: { timeoutMs?: number | undefined; clientConfig?: KafkaProps | undefined } = {},
): Promise<PartitionReplicas[]> {
  const admin = createAdmin(bootstrap, opts.clientConfig ?? {});
  try {
    return await describe(admin, topics, opts.timeoutMs ?? 30_000);
  } finally {
    await admin.close();
  }
}

function createAdmin(bootstrap: string, clientConfig: KafkaProps): KafkaAdmin {
  return new KafkaAdmin({ ...clientConfig, 'bootstrap.servers': bootstrap }, 'txgate-read-topic');
}

async function describe(admin: KafkaAdmin, topics: string[], timeoutMs: number): Promise<PartitionReplicas[]> {
  const described = await admin.describeTopics(topics, timeoutMs);
  const partitions: PartitionReplicas[] = [];
  for (const t of described) {
    if (t.error) throw new Error(`cannot read topic ${t.name}: ${t.error.message}`);
    for (const p of t.partitions) {
      partitions.push({ topic: t.name, partition: p.partition, leader: p.leader?.id ?? null, replicas: p.replicas.map((r) => r.id) });
    }
  }
  return partitions;
}

async function describeEnds(
  bootstrap: string,
  topics: string[],
  isolation: Isolation,
  timeoutMs: number,
  clientConfig: KafkaProps,
): Promise<{ partitions: Partition[]; endOffsets: Map<string, number> }> {
  const admin = createAdmin(bootstrap, clientConfig);
  try {
    const partitions: Partition[] = (await describe(admin, topics, timeoutMs)).map((p) => ({ topic: p.topic, partition: p.partition }));
    return { partitions, endOffsets: await listEnds(admin, partitions, isolation, timeoutMs) };
  } finally {
    await admin.close();
  }
}

/** A partition whose end offset stays below an offset that must be readable. */
export interface LaggingPartition {
  topic: string;
  partition: number;
  /** The end offset for the isolation level (the last stable offset for read_committed). */
  endOffset: number | undefined;
  /** The end offset needed: one past the highest offset that must be readable. */
  needed: string;
}

/**
 * Waits until each partition's end offset (for the isolation level) is past every offset in
 * `through`, or the timeout passes; resolves with the partitions still behind (none: all readable).
 * A reader that knows what was committed waits with this before readTopics: a transaction still
 * open elsewhere holds the last stable offset back, and committed records behind it would look
 * missing.
 */
export async function waitForEndOffsets(
  bootstrap: string,
  topics: string[],
  through: TopicPosition[],
  opts: { isolation?: Isolation | undefined; timeoutMs?: number | undefined; clientConfig?: KafkaProps | undefined } = {},
): Promise<LaggingPartition[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const needed = new Map<string, { p: Partition; next: bigint }>();
  for (const p of through) {
    const next = BigInt(p.offset) + 1n;
    if (next > (needed.get(key(p))?.next ?? 0n)) needed.set(key(p), { p: { topic: p.topic, partition: p.partition }, next });
  }
  for (;;) {
    const ends = await describeEnds(bootstrap, topics, opts.isolation ?? 'read_committed', Math.max(1000, deadline - Date.now()), opts.clientConfig ?? {});
    const behind = [...needed.entries()]
      .filter(([k, n]) => BigInt(ends.endOffsets.get(k) ?? -1) < n.next)
      .map(([k, n]) => ({ ...n.p, endOffset: ends.endOffsets.get(k), needed: String(n.next) }));
    if (behind.length === 0 || Date.now() > deadline) return behind;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function describeLagging(lagging: LaggingPartition[], isolation: Isolation = 'read_committed'): string {
  return (
    `the ${isolation === 'read_committed' ? 'last stable offset' : 'high watermark'} stays below offsets that must be readable: ` +
    lagging.map((l) => `${key(l)} at ${l.endOffset ?? 'unknown'}, needs ${l.needed}`).join(', ') +
    (isolation === 'read_committed' ? ' (a transaction is still open on those partitions)' : '')
  );
}

async function listEnds(admin: KafkaAdmin, partitions: Partition[], isolation: Isolation, timeoutMs: number): Promise<Map<string, number>> {
  const ends = await admin.listOffsets(partitions, isolation, timeoutMs);
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
  records: TopicRecord[],
  eofAt: Map<string, number>,
  clientConfig: KafkaProps,
): Promise<string> {
  let lso = new Map<string, number>();
  let hw = new Map<string, number>();
  try {
    ({ endOffsets: lso } = await describeEnds(bootstrap, topics, 'read_committed', 5000, clientConfig));
    ({ endOffsets: hw } = await describeEnds(bootstrap, topics, 'read_uncommitted', 5000, clientConfig));
  } catch {
    // best effort: the report is still useful without the current ends
  }
  return partitions
    .map((p) => {
      const n = records.filter((r) => r.topic === p.topic && r.partition === p.partition).length;
      return `${key(p)}: ${n} records kept, reached ${eofAt.get(key(p)) ?? 'no end'}, now LSO ${lso.get(key(p)) ?? '?'} HW ${hw.get(key(p)) ?? '?'}`;
    })
    .join('; ');
}

function toRecord(m: Kafka.Message): TopicRecord {
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
