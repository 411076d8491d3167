/**
 * Creates topics with the admin client and waits until every partition has a leader, so the
 * caller can produce and list offsets at once (auto.create.topics.enable=false on local brokers).
 */
import { RdKafka } from '@confluentinc/kafka-javascript';

const TOPIC_ALREADY_EXISTS = 36;

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
  const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': bootstrap, 'client.id': 'txgate-topics' });
  try {
    await Promise.all(
      specs.map(
        (s) =>
          new Promise<void>((resolve, reject) => {
            const topic = {
              topic: s.topic,
              num_partitions: s.partitions ?? 1,
              replication_factor: s.replicationFactor ?? -1,
              ...(s.config ? { config: s.config } : {}),
            };
            admin.createTopic(topic as RdKafka.NewTopic, timeoutMs, (err) => {
              if (!err || (err.code === TOPIC_ALREADY_EXISTS && !opts.failIfExists)) resolve();
              else reject(new Error(`could not create topic ${s.topic}: ${err.message} (code ${err.code})`, { cause: err }));
            });
          }),
      ),
    );
    await waitForLeaders(admin, specs.map((s) => s.topic), deadline);
  } finally {
    admin.disconnect();
  }
}

async function waitForLeaders(admin: RdKafka.IAdminClient, topics: string[], deadline: number): Promise<void> {
  let last = '';
  while (Date.now() < deadline) {
    const described = await new Promise<RdKafka.TopicDescription[] | undefined>((resolve) => {
      admin.describeTopics(topics, { timeout: Math.max(1000, Math.min(5000, deadline - Date.now())) }, (err, res) => {
        if (err) last = err.message;
        resolve(err ? undefined : res);
      });
    });
    if (
      described &&
      described.every((t) => !t.error && t.partitions.length > 0 && t.partitions.every((p) => p.leader !== null))
    ) {
      return;
    }
    if (described) last = described.map((t) => `${t.name}: ${t.error?.message ?? 'partitions without a leader'}`).join(', ');
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`topics ${topics.join(', ')} have no leaders yet: ${last}`);
}
