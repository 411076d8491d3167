/**
 * The topic catalog's metadata source on librdkafka's admin client (DescribeTopics).
 */
import { Kafka } from './native.js';
import { TopicMetadataError, type TopicMetadataSource } from '../gateway/service/topic-catalog.js';

const UNKNOWN_TOPIC_OR_PART = 3;

/**
 * Reads metadata with librdkafka's admin client (DescribeTopics). `config` is the same client
 * property map the producers use (bootstrap.servers, TLS/SASL...).
 */
export function createKafkaTopicMetadataSource(
  config: Record<string, string | number | boolean>,
  opts: { probeTopic: string },
): TopicMetadataSource {
  let admin: Kafka.IAdminClient | undefined;
  const client = (): Kafka.IAdminClient => {
    admin ??= Kafka.AdminClient.create({
      // librdkafka sends DescribeTopics to the broker its metadata names as controller, and a
      // KRaft broker names one live broker at random: when that broker dies, every lookup times
      // out until a metadata refresh names another. The default refresh is 5 minutes; every
      // 2 s a dead broker costs seconds, not minutes (the fault suite found 128 s of 503s).
      'topic.metadata.refresh.interval.ms': 2_000,
      ...config,
      'client.id': String(config['client.id'] ?? 'txgate-gateway-metadata'),
    } as Kafka.GlobalConfig);
    return admin;
  };
  const describeRaw = (topics: string[], timeoutMs: number) =>
    new Promise<Kafka.TopicDescription[]>((resolve, reject) => {
      client().describeTopics(topics, { timeout: timeoutMs }, (err, descriptions) => {
        if (err) reject(new TopicMetadataError(`Kafka metadata request failed: ${err.message}`, err.code, { cause: err }));
        else resolve(descriptions);
      });
    });
  return {
    async describe(topics, timeoutMs) {
      const out = new Map<string, number | null>();
      for (const d of await describeRaw(topics, timeoutMs)) {
        if (!d.error) out.set(d.name, d.partitions.length);
        else if (d.error.code === UNKNOWN_TOPIC_OR_PART) out.set(d.name, null);
        else throw new TopicMetadataError(`Kafka metadata for topic "${d.name}" failed: ${d.error.message}`, d.error.code);
      }
      return out;
    },
    async ping(timeoutMs) {
      // Any answer proves a broker is reachable, including "unknown topic".
      await describeRaw([opts.probeTopic], timeoutMs);
    },
    async close() {
      admin?.disconnect();
      admin = undefined;
    },
  };
}
