/**
 * All of the pool's transactional error handling is decided here, in one place (the way
 * franz-go keeps its own). Each error a producer raises maps to one action:
 *
 *   retry    transient (coordinator moving, CONCURRENT_TRANSACTIONS right after a commit, a
 *            timed-out commit): repeat the same call with backoff, within a deadline. A commit
 *            that timed out is retried, never aborted: librdkafka refuses abort while the commit
 *            is in progress (-173) and the commit may already have succeeded.
 *   abort    the transaction cannot commit (librdkafka's txnRequiresAbort, KIP-890's
 *            TRANSACTION_ABORTABLE, a refused record): abort it, and the producer goes on serving.
 *   replace  the producer is fenced (another holder of the same transactional.id), fatal, or in a
 *            state we cannot know: close it and create a new one with the SAME id in the same slot.
 *            Re-initialising the id bumps the epoch and aborts whatever it left open.
 *
 * librdkafka's own flags come first, since it knows its state machine best; codes decide only
 * where the flags are silent (delivery reports carry no flags, and the fake producer sets its own).
 */
import { KafkaClientError } from './producer-port.js';

export type ErrorAction = 'retry' | 'abort' | 'replace';

/** librdkafka error codes (negative: local to the client) and Kafka protocol codes. */
export const KafkaCode = {
  MSG_SIZE_TOO_LARGE: 10,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_PRODUCER_EPOCH: 47,
  INVALID_TXN_STATE: 48,
  INVALID_PRODUCER_ID_MAPPING: 49,
  CONCURRENT_TRANSACTIONS: 51,
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 53,
  UNKNOWN_PRODUCER_ID: 59,
  PRODUCER_FENCED: 90,
  TRANSACTION_ABORTABLE: 120,
  _TIMED_OUT_QUEUE: -166,
  _FATAL: -150,
  _PURGE_QUEUE: -152,
  _PURGE_INFLIGHT: -151,
  _FENCED: -144,
  _CONFLICT: -173,
  _STATE: -172,
  _PREV_IN_PROGRESS: -177,
  _TIMED_OUT: -185,
  _MSG_TIMED_OUT: -192,
  _TRANSPORT: -195,
  _ALL_BROKERS_DOWN: -187,
} as const;

const FENCED = new Set<number>([
  KafkaCode.PRODUCER_FENCED,
  KafkaCode.INVALID_PRODUCER_EPOCH,
  KafkaCode.INVALID_PRODUCER_ID_MAPPING,
  KafkaCode._FENCED,
]);

const UNRECOVERABLE = new Set<number>([...FENCED, KafkaCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaCode._FATAL]);

const RETRIABLE = new Set<number>([
  KafkaCode.CONCURRENT_TRANSACTIONS,
  KafkaCode.COORDINATOR_LOAD_IN_PROGRESS,
  KafkaCode.COORDINATOR_NOT_AVAILABLE,
  KafkaCode.NOT_COORDINATOR,
  KafkaCode._TIMED_OUT,
  KafkaCode._TIMED_OUT_QUEUE,
  KafkaCode._TRANSPORT,
  KafkaCode._ALL_BROKERS_DOWN,
]);

export type TxStep = 'init' | 'begin' | 'send' | 'send-offsets' | 'commit' | 'abort';

/** Decides what the pool does after `error` was raised by `step`. */
export function classify(error: unknown, step: TxStep): ErrorAction {
  if (!(error instanceof KafkaClientError)) {
    // Not from Kafka (a bug, or the adapter's own guard): the producer's state is unknown,
    // except for a failed send, which the commit would refuse anyway.
    return step === 'send' ? 'abort' : 'replace';
  }
  if (error.fatal || UNRECOVERABLE.has(error.code)) return 'replace';
  if (error.txnRequiresAbort || error.code === KafkaCode.TRANSACTION_ABORTABLE) {
    return step === 'abort' ? 'replace' : 'abort';
  }
  // A record the broker refused, or one that never got out: the transaction cannot commit,
  // but the producer is fine.
  if (step === 'send') return 'abort';
  if (error.retriable || RETRIABLE.has(error.code)) return 'retry';
  // _STATE, _CONFLICT, _PREV_IN_PROGRESS and anything unrecognised: we no longer know what the
  // producer thinks is going on, so we stop trusting it.
  return 'replace';
}

/** True for the errors that mean another producer took over this transactional.id. */
export function isFencing(error: unknown): boolean {
  if (!(error instanceof KafkaClientError)) return false;
  // librdkafka reports fencing as a fatal error (-150) whose message names the cause.
  return FENCED.has(error.code) || (error.code === KafkaCode._FATAL && /fenc/i.test(error.message));
}

/**
 * What a failed delivery (one record's send inside a transaction) says, for group commit's blame:
 *   record       Kafka refused the record itself (size, timestamp, unknown topic...): the request
 *                that sent it is to blame. `tooLarge` when for its size.
 *   timed-out    not acknowledged within message.timeout.ms: its partition (a deleted topic, a
 *                partition without a leader) or the whole cluster. `own` is false for the copies
 *                librdkafka gives later sends once the transaction has turned abortable.
 *   purged       dropped by the client before it was sent (an abort's purge).
 *   transaction  the broker, the transaction or fencing: no single request explains it.
 */
export type DeliveryFailure =
  | { kind: 'record'; tooLarge: boolean }
  | { kind: 'timed-out'; own: boolean }
  | { kind: 'purged' }
  | { kind: 'transaction' };

/** Kafka error codes that say something about a record itself, not about the broker or the transaction. */
const RECORD_SPECIFIC = new Set<number>([
  2, // CORRUPT_MESSAGE
  KafkaCode.MSG_SIZE_TOO_LARGE, // the topic's max.message.bytes
  18, // RECORD_LIST_TOO_LARGE
  32, // INVALID_TIMESTAMP
  87, // INVALID_RECORD
  -191, // _MSG_SIZE_TOO_LARGE (local: larger than message.max.bytes)
  -190, // _UNKNOWN_PARTITION
  -188, // _UNKNOWN_TOPIC
  3, // UNKNOWN_TOPIC_OR_PART
  29, // TOPIC_AUTHORIZATION_FAILED
]);
const TOO_LARGE = new Set<number>([KafkaCode.MSG_SIZE_TOO_LARGE, -191]);

export function classifyDelivery(error: unknown): DeliveryFailure {
  if (!(error instanceof KafkaClientError)) return { kind: 'transaction' };
  if (error.code === KafkaCode._MSG_TIMED_OUT) return { kind: 'timed-out', own: !error.txnRequiresAbort };
  if (error.code === KafkaCode._PURGE_QUEUE) return { kind: 'purged' };
  // An error flagged txnRequiresAbort speaks of the transaction (what later sends get once an
  // earlier one failed), not of the record it came back for.
  if (RECORD_SPECIFIC.has(error.code) && !error.txnRequiresAbort) return { kind: 'record', tooLarge: TOO_LARGE.has(error.code) };
  return { kind: 'transaction' };
}
