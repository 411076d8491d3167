/**
 * txgate as a library: a pool of transactional Kafka producers that runs each caller's work in
 * its own transaction. See README.md, "Library API".
 */
export { TransactionalProducerPool } from './pool/pool.js';
export { createPoolMetrics, combineEvents, type PoolMetrics } from './pool/metrics.js';
export { classify, isFencing, KafkaCode, type ErrorAction } from './pool/classify.js';
export { consumeTransformProduce, offsetsToCommit, type ConsumeTransformProduceOptions, type ConsumedMessage } from './kafka/exactly-once.js';
export {
  KafkaClientError,
  type KafkaErrorFlags,
  type OutgoingRecord,
  type ProducerFactory,
  type RecordMetadata,
  type TopicPartitionOffset,
  type TransactionalProducer,
} from './pool/producer-port.js';
export type {
  PoolEvents,
  PoolOptions,
  PoolStats,
  ReplaceCause,
  RetryOptions,
  RunOptions,
  SlotState,
  SlotStats,
  Transaction,
  TransactionResult,
} from './pool/types.js';
export {
  ConfluentTransactionalProducer,
  createConfluentProducerFactory,
  type KafkaClientConfig,
} from './kafka/confluent-producer.js';
export { assertThreadPoolFits, configuredThreadPoolSize } from './kafka/thread-pool.js';
export * from './errors.js';
export { runVerify, runLoad, checkLoad, verdictLine, exitCode as verifyExitCode, type VerifyOptions, type VerifyReport } from './verify/index.js';
