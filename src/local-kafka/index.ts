export { fetchKafkaJars, KafkaLauncherError, KAFKA_LOCAL_SCRIPT, type LauncherOptions } from './launcher.js';
export { LocalKafka, LOCAL_HOST, DEFAULT_LOCAL_PORT, type LocalKafkaOptions, type LocalKafkaStatus } from './single-node.js';
export {
  LocalKafkaCluster,
  DEFAULT_CLUSTER_BASE_PORT,
  CLUSTER_SIZE,
  type ClusterNode,
  type LocalKafkaClusterOptions,
} from './cluster.js';
export { ensureTopics, type TopicSpec, type EnsureTopicsOptions } from './topics.js';
