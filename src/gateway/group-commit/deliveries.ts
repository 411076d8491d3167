/**
 * One transaction's sends, settled one by one so that each outcome is attributable to the request
 * that sent it, and the blame for a refused record.
 */
import { classifyDelivery, type DeliveryFailure } from '../../pool/classify.js';
import type { OutgoingRecord, RecordMetadata } from '../../pool/producer-port.js';
import type { Transaction } from '../../pool/types.js';

export const failureOf = (s: Settling): DeliveryFailure | undefined => (s.outcome?.ok === false ? classifyDelivery(s.outcome.error) : undefined);

/**
 * Which of a request's records Kafka refused. Records sharing a produce batch fail together, so
 * when several failed for size, the largest is the one to blame.
 */
export function culprit(records: OutgoingRecord[], sent: Settling[]): number {
  let found = -1;
  sent.forEach((s, i) => {
    const failure = failureOf(s);
    if (failure?.kind !== 'record') return;
    if (found < 0) {
      found = i;
      return;
    }
    const first = failureOf(sent[found]!);
    if (first?.kind === 'record' && first.tooLarge && failure.tooLarge && recordSize(records[i]!) > recordSize(records[found]!)) found = i;
  });
  return found;
}

export function recordSize(r: OutgoingRecord): number {
  let n = (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (const [k, v] of Object.entries(r.headers ?? {})) n += Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : v.length);
  return n;
}

export interface Settling {
  done: Promise<void>;
  outcome: { ok: true; value: RecordMetadata } | { ok: false; error: unknown } | undefined;
}

export function settle(p: Promise<RecordMetadata | void>): Settling {
  const s: Settling = { done: Promise.resolve(), outcome: undefined };
  s.done = p.then(
    (value) => {
      s.outcome = { ok: true, value: value as RecordMetadata };
    },
    (error: unknown) => {
      s.outcome = { ok: false, error };
    },
  );
  return s;
}

export function callHook(fn: () => Promise<void> | undefined): Promise<void> {
  try {
    return fn() ?? Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}

export function sendOne(tx: Transaction, record: OutgoingRecord): Promise<RecordMetadata> {
  try {
    return tx.send(record).then((md) => {
      const first = md[0];
      if (!first) throw new Error('the pool returned no metadata for a sent record');
      return first;
    });
  } catch (err) {
    return Promise.reject(err);
  }
}
