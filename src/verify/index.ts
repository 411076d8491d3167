/**
 * `txgate verify`: drives gateways with checkable, retried requests and proves from Kafka's own
 * log that every acknowledged record is there exactly once (README.md, "Verifying a deployment").
 */
export { runVerify, checkLoad, prepareTopics, readRunRecords, CHECK_DEFAULTS, type CheckOptions, type VerifyOptions } from './run.js';
export { runLoad, percentile, LOAD_DEFAULTS, type GatewayMode, type LoadOptions, type LoadProgress, type LoadResult, type LoadStats } from './load.js';
export { check, decide, type Decision } from './checker.js';
export { buildReport, verdictLine, exitCode, type Anomalies, type Verdict, type VerifyReport } from './report.js';
export {
  checkTransactions,
  parseFindHanging,
  parseTransactionsList,
  type HangingTransaction,
  type TransactionListing,
  type TransactionsView,
} from './transactions.js';
export { classifyAnswer, parseRetryAfter, retryDelayMs, DEFAULT_RETRY_POLICY, type AttemptAnswer, type RetryPolicy } from './http-client.js';
export type { CheckResult, Example, LaneOutcome, Position, ReadRecord, RecordAnomalies, SentRecord, SentRequest } from './types.js';
