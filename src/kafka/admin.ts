/**
 * librdkafka's admin client, for the idempotency topic (as its TopicAdmin port) and for creating
 * topics on local brokers. The native client is created on first use.
 */
import type { Isolation, NewTopic, RetentionPolicy, TopicAdmin } from '../gateway/idempotency/ports.js';
import { Kafka } from './native.js';
import type { KafkaProps } from './props.js';

const TOPIC_AUTHORIZATION_FAILED = 29;
const TOPIC_ALREADY_EXISTS = 36;
const POLICY_VIOLATION = 44;

export class KafkaAdmin implements TopicAdmin {
  private client: Kafka.IAdminClient | undefined;

  constructor(
    private readonly props: KafkaProps,
    private readonly clientId: string,
  ) {}

  get bootstrapServers(): string | undefined {
    const servers = this.props['bootstrap.servers'];
    return servers === undefined ? undefined : String(servers);
  }

  async topicExists(topic: string, timeoutMs: number): Promise<boolean> {
    return (await this.listTopics(timeoutMs)).includes(topic);
  }

  /** Rejects with the client's error (its `code` kept), TOPIC_ALREADY_EXISTS aside. */
  createTopic(spec: NewTopic, timeoutMs: number): Promise<'created' | 'existed'> {
    const topic: Kafka.NewTopic = { topic: spec.topic, num_partitions: spec.partitions, replication_factor: spec.replicationFactor };
    if (Object.keys(spec.config).length > 0) topic.config = spec.config as Kafka.NewTopic['config'];
    return new Promise((resolve, reject) =>
      this.admin().createTopic(topic, timeoutMs, (err) => {
        if (!err) resolve('created');
        else if (err.code === TOPIC_ALREADY_EXISTS) resolve('existed');
        else reject(err);
      }),
    );
  }

  describeTopics(topics: string[], timeoutMs: number): Promise<Kafka.TopicDescription[]> {
    return new Promise((resolve, reject) =>
      this.admin().describeTopics(topics, { timeout: timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  /** Resolves once every partition of the topics has a leader (so they can be written and listed at once). */
  async waitForLeaders(topics: string[], deadline: number): Promise<void> {
    let last = '';
    while (Date.now() < deadline) {
      const described = await this.describeTopics(topics, Math.max(1000, Math.min(5000, deadline - Date.now()))).catch((err: Error) => {
        last = err.message;
        return undefined;
      });
      if (described?.every((t) => !t.error && t.partitions.length > 0 && t.partitions.every((p) => p.leader !== null))) return;
      if (described) last = described.map((t) => `${t.name}: ${t.error?.message ?? 'partitions without a leader'}`).join(', ');
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`topics ${topics.join(', ')} have no leaders yet: ${last}`);
  }

  /** Each partition's end offset (a partition's own error is in its result). */
  listOffsets(
    partitions: Array<{ topic: string; partition: number }>,
    isolation: Isolation,
    timeoutMs: number,
  ): Promise<Kafka.ListOffsetsResult[]> {
    return new Promise((resolve, reject) =>
      this.admin().listOffsets(
        partitions.map((p) => ({ ...p, offset: Kafka.OffsetSpec.LATEST })),
        {
          timeout: timeoutMs,
          isolationLevel: isolation === 'read_committed' ? Kafka.IsolationLevel.READ_COMMITTED : Kafka.IsolationLevel.READ_UNCOMMITTED,
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
  }

  /**
   * librdkafka's ListOffsets looks the leaders up in the client's metadata cache; when the broker
   * that answered its first lookup had not heard of a topic created a moment ago, the topic is
   * cached as unknown, and every later ListOffsets fails at once with -156 _NOENT ("Local: No
   * such entry") without asking a broker again (measured on 3 brokers: about 1 fresh topic in 15,
   * still failing 150 s later). So a failure first refreshes the client's metadata, for the
   * caller's next attempt.
   */
  async endOffsets(topic: string, partitions: number, isolation: Isolation, timeoutMs: number): Promise<number[]> {
    const wanted = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }));
    return this.refreshingOnFailure(async () => {
      const result = await this.listOffsets(wanted, isolation, timeoutMs);
      // A partition's error (its leader has not loaded it yet) is a failure, never an offset.
      const failed = result.find((r) => r.error);
      if (failed) throw failed.error;
      const offsets = Array.from({ length: partitions }, () => 0);
      for (const r of result) offsets[r.partition] = Number(r.offset);
      return offsets;
    });
  }

  /**
   * This client cannot read or alter topic configs (no DescribeConfigs/AlterConfigs in the
   * client's admin API), so it asks the broker to delete the records of partition 0 before offset
   * 0: that deletes nothing, and is refused with POLICY_VIOLATION exactly when cleanup.policy
   * lacks "delete". It cannot see a retention.ms that is too short.
   */
  retentionPolicy(topic: string, timeoutMs: number): Promise<RetentionPolicy> {
    return this.refreshingOnFailure(async () => {
      try {
        const [result] = await new Promise<Kafka.DeleteRecordsResult[]>((resolve, reject) =>
          this.admin().deleteRecords([{ topic, partition: 0, offset: 0 }], { timeout: timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
        );
        if (result?.error) throw result.error;
        return { kind: 'time-based' };
      } catch (err) {
        const code = (err as Partial<Kafka.LibrdKafkaError>).code;
        // The answers sought, not failures.
        if (code === POLICY_VIOLATION) return { kind: 'compact-only' };
        if (code === TOPIC_AUTHORIZATION_FAILED) {
          return {
            kind: 'unknown',
            reason: "this gateway's principal lacks the DELETE permission on it (only this check uses it; the gateway runs without it)",
          };
        }
        throw err;
      }
    });
  }

  close(): Promise<void> {
    this.client?.disconnect();
    this.client = undefined;
    return Promise.resolve();
  }

  private admin(): Kafka.IAdminClient {
    this.client ??= Kafka.AdminClient.create({ ...this.props, 'client.id': this.clientId } as Kafka.GlobalConfig);
    return this.client;
  }

  private listTopics(timeoutMs: number): Promise<string[]> {
    return new Promise((resolve, reject) => this.admin().listTopics({ timeout: timeoutMs }, (err, list) => (err ? reject(err) : resolve(list))));
  }

  private async refreshingOnFailure<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      // A full metadata request: its answer replaces what the client cached about every topic.
      await this.listTopics(5_000).catch(() => {});
      throw err;
    }
  }
}
