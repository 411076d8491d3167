/**
 * Creates topics with the admin client and waits until every partition has a leader, so the
 * caller can produce and list offsets at once (auto.create.topics.enable=false on local brokers).
 */
import { KafkaAdmin } from '../kafka/admin.js';

export interface TopicSpec {
  topic: string;
  partitions?: number | undefined;
  /** Omitted: the broker's default.replication.factor. */
  replicationFactor?: number | undefined;
  /** Topic-level configs, e.g. { 'min.insync.replicas': '2' }. */
  config?: Record<string, string> | undefined;
}

export interface EnsureTopicsOptions {
  /** Fail when a topic already exists (default: accept it as it is). */
  failIfExists?: boolean | undefined;
  timeoutMs?: number | undefined;
}

export async function ensureTopics(bootstrap: string, specs: TopicSpec[], opts: EnsureTopicsOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const admin = new KafkaAdmin({ 'bootstrap.servers': bootstrap }, 'txgate-topics');
  try {
    await Promise.all(
      specs.map(async (s) => {
        const spec = { topic: s.topic, partitions: s.partitions ?? 1, replicationFactor: s.replicationFactor ?? -1, config: s.config ?? {} };
        const created = await admin.createTopic(spec, timeoutMs).catch((err: { message: string; code: number }) => {
          throw new Error(`could not create topic ${s.topic}: ${err.message} (code ${err.code})`, { cause: err });
        });
        if (created === 'existed' && opts.failIfExists) throw new Error(`could not create topic ${s.topic}: it already exists (TOPIC_ALREADY_EXISTS)`);
      }),
    );
    await admin.waitForLeaders(specs.map((s) => s.topic), deadline);
  } finally {
    await admin.close();
  }
}
