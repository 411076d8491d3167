/**
 * Replaying a committed key whose outcome the view does not hold in full: its outcome record is
 * read back from the topic by offset, and checked before anything is answered from it.
 *
 * - The record's key must be the request's key. Anything else (a collision in the key index, or a
 *   topic that is not what the index was built from) is a 503: the key is known to be taken, so
 *   running the request could write it twice.
 * - The record must be an outcome: otherwise 503, for the same reason.
 * - Its fingerprint decides between the replay and a 422 (the key was used with another body).
 * - A record that is gone (retention or compaction removed it) is a 503, never a run. Unless the
 *   view has moved on to a newer outcome of the key meanwhile: then the key is decided again.
 */
import { IdempotencyKeyMismatchError, IdempotencyUnavailableError } from '../../errors.js';
import type { OutcomeReader } from './outcome-reader.js';
import { decodeRecord, type CommittedOutcome } from './record-format.js';
import type { IdempotencyView } from './view.js';

/** What to answer: the outcome to replay, or 'decide-again'. Throws as the header says. */
export async function replayFromTopic(
  view: IdempotencyView,
  reader: OutcomeReader,
  request: { key: string; fingerprint: string; partition: number; offset: number },
  opts: { timeoutMs: number; signal?: AbortSignal | undefined },
): Promise<CommittedOutcome | 'decide-again'> {
  const { key, fingerprint, partition, offset } = request;
  const record = await reader.read(partition, offset, opts);
  if (!record || record.offset !== offset) {
    if (view.lookup(key)?.offset !== offset) return 'decide-again';
    throw new IdempotencyUnavailableError(
      `the outcome of this idempotency key (partition ${partition}, offset ${offset} of the idempotency topic) is no longer in Kafka, ` +
        'so it cannot be replayed; the key stays taken until it expires',
    );
  }
  if (record.key !== key) {
    throw new IdempotencyUnavailableError(
      `the record at partition ${partition}, offset ${offset} of the idempotency topic belongs to another key, not to this one; ` +
        'the key is treated as taken and its outcome as unknown',
    );
  }
  const decoded = decodeRecord(record.value);
  if (decoded?.kind !== 'outcome') {
    throw new IdempotencyUnavailableError(
      `the record at partition ${partition}, offset ${offset} of the idempotency topic is not a readable outcome of this key; ` +
        'the key is treated as taken and its outcome as unknown',
    );
  }
  if (decoded.outcome.fingerprint !== fingerprint) throw new IdempotencyKeyMismatchError(key);
  view.cacheOutcome(key, decoded.outcome, offset);
  return decoded.outcome;
}
