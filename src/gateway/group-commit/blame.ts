/**
 * What becomes of each request after its batch's transaction has sent everything: the blame for
 * a failure, decided in one pure function from the outcome of every hook and send.
 *
 * - A participant's own rejection (ParticipantRejection) fails only its request.
 * - A record Kafka refused for itself fails its request (RecordRejectedError). Records of several
 *   requests may share one produce batch, which fails as a whole, so a refusal seen by more than
 *   one request is not trusted: each of those requests runs again alone. The others run again.
 * - Only purged deliveries: librdkafka sometimes purges the first records of the transaction that
 *   follows an abort caused by a refused record (its epoch bump completes late). Nothing of this
 *   transaction becomes visible, so its requests run again, a few times.
 * - Delivery timeouts of some requests' records while every record of the others was acknowledged
 *   point at those requests' partitions (a topic deleted under load, a partition without a leader),
 *   not at the transaction: those requests fail (aborted, nothing of them written; the HTTP layer
 *   looks their topics up again before a retry is accepted) and their batch-mates run again without
 *   them. Not retried here: each attempt holds a producer for message.timeout.ms. A record failing
 *   only because an earlier one made the transaction abortable is not its request's fault.
 * - Anything else no single request explains (broker, transaction, fencing) fails the whole batch.
 */
import { RecordRejectedError, TransactionAbortedError } from '../../errors.js';
import type { KafkaClientError, OutgoingRecord, RecordMetadata } from '../../pool/producer-port.js';
import { culprit, failureOf, type Settling } from './deliveries.js';
import { ParticipantRejection } from './participant.js';

export type Disposition = { kind: 'fail'; error: unknown } | { kind: 'retry-alone' } | { kind: 'retry' };

/** A request as the judge sees it: its records, and how often it already ran again for each reason. */
export interface Attempted {
  req: { records: OutgoingRecord[] };
  purgeRetries: number;
  timeoutRetries: number;
}

export type Verdict =
  | { kind: 'commit'; perItem: RecordMetadata[][] }
  | { kind: 'fail-all'; error: unknown }
  /** The transaction is aborted; each request (by index) fails or runs again. */
  | { kind: 'redo'; reason: 'refused' | 'purged' | 'timed-out'; dispositions: Disposition[] };

export const MAX_PURGE_RETRIES = 3;
export const MAX_TIMEOUT_RETRIES = 2;

/** `begun[i]` is request i's participant hook, `sent[i]` its records' sends, in order. */
export function judgeAttempt(items: readonly Attempted[], begun: readonly Settling[], sent: readonly Settling[][]): Verdict {
  const dispositions: Array<Disposition | undefined> = items.map(() => undefined);
  const suspects: number[] = [];
  let unattributed: unknown;
  items.forEach((item, i) => {
    const hook = begun[i]!.outcome;
    if (hook?.ok === false) {
      if (hook.error instanceof ParticipantRejection) dispositions[i] = { kind: 'fail', error: hook.error.reason };
      else unattributed ??= hook.error;
    }
    const refused = culprit(item.req.records, sent[i]!);
    if (refused >= 0 && dispositions[i] === undefined) {
      const error = (sent[i]![refused]!.outcome as { ok: false; error: KafkaClientError }).error;
      dispositions[i] = { kind: 'fail', error: new RecordRejectedError(refused, error.code, error.codeName, error.message, { cause: error }) };
      suspects.push(i);
    }
    for (const s of sent[i]!) {
      if (s.outcome?.ok === false && failureOf(s)!.kind !== 'record') unattributed ??= s.outcome.error;
    }
  });

  if (dispositions.some((d) => d !== undefined)) {
    if (suspects.length > 1 && items.length > 1) for (const i of suspects) dispositions[i] = { kind: 'retry-alone' };
    return { kind: 'redo', reason: 'refused', dispositions: dispositions.map((d) => d ?? { kind: 'retry' }) };
  }

  const all = [...begun, ...sent.flat()];
  const failures = all.filter((s) => s.outcome?.ok === false);
  if (failures.length > 0 && failures.every((s) => failureOf(s)!.kind === 'purged') && items.every((item) => item.purgeRetries < MAX_PURGE_RETRIES)) {
    return { kind: 'redo', reason: 'purged', dispositions: items.map(() => ({ kind: 'retry' })) };
  }

  const ownTimeout = (s: Settling) => {
    const f = failureOf(s);
    return f?.kind === 'timed-out' && f.own;
  };
  const timedOut = items.map((_, i) => sent[i]!.some(ownTimeout));
  if (
    failures.every((s) => failureOf(s)!.kind === 'timed-out') &&
    timedOut.some(Boolean) &&
    items.some((_, i) => sent[i]!.every((s) => s.outcome?.ok === true)) &&
    items.every((item, i) => timedOut[i] || item.timeoutRetries < MAX_TIMEOUT_RETRIES)
  ) {
    return {
      kind: 'redo',
      reason: 'timed-out',
      dispositions: items.map((item, i): Disposition => {
        if (!timedOut[i]) return { kind: 'retry' };
        const late = sent[i]!.findIndex(ownTimeout);
        const record = item.req.records[late]!;
        const where = `${record.topic}${record.partition !== undefined ? ` partition ${record.partition}` : ''}`;
        const cause = (sent[i]![late]!.outcome as { error: unknown }).error;
        return {
          kind: 'fail',
          error: new TransactionAbortedError(`record ${late} (topic ${where}) was not acknowledged in time (the topic may have been deleted, or its partition has no leader)`, { cause }),
        };
      }),
    };
  }

  if (unattributed !== undefined) return { kind: 'fail-all', error: unattributed };
  if (all.some((s) => s.outcome === undefined)) {
    return { kind: 'fail-all', error: new TransactionAbortedError('some records of the transaction were not acknowledged in time after another failed; none of them is committed') };
  }
  return { kind: 'commit', perItem: sent.map((records) => records.map((s) => (s.outcome as { ok: true; value: RecordMetadata }).value)) };
}
