/**
 * Deciding a key from the view, as one pure step: replay a committed outcome, run the request
 * (the key is known unused up to a horizon), or wait for the committed cursor to move. The store
 * loops on it with real waits; the model test (test/unit/idempotency-model.test.ts) drives the
 * same step through random interleavings. docs/idempotency.md states the protocol and its proof.
 */
import { IdempotencyKeyMismatchError } from '../../errors.js';
import type { CommittedOutcome } from './record-format.js';
import type { IdempotencyView } from './view.js';

export type DecisionStep =
  /**
   * The key committed: replay its outcome, the record at `offset` of the key's partition. `outcome`
   * when the view holds it in full; otherwise the caller reads the record back (replay.ts), and
   * compares the fingerprint there.
   */
  | { kind: 'replay'; offset: number; outcome: CommittedOutcome | undefined }
  /** No record of the key is open or committed below `horizon` (the uncommitted position). */
  | { kind: 'run'; horizon: number }
  /** Another transaction holds the key and its outcome is not known yet: wait for the committed cursor to reach `target`. */
  | { kind: 'wait'; target: number };

/** Throws IdempotencyKeyMismatchError when the key committed with another body (known from a held outcome). */
export function decideKey(view: IdempotencyView, key: string, fingerprint: string, partition: number): DecisionStep {
  // A committed claim newer than any outcome we hold: its transaction committed, its outcome is
  // further on. Wait for the committed consumer to read on (the outcome, or past it).
  if (view.committedClaim(key) !== undefined) return { kind: 'wait', target: view.position('committed', partition) + 1 };
  const known = view.lookup(key);
  if (known) {
    if (known.outcome && known.outcome.fingerprint !== fingerprint) throw new IdempotencyKeyMismatchError(key);
    return { kind: 'replay', offset: known.offset, outcome: known.outcome };
  }
  // Records of the key whose transaction has not ended (another instance is working on it, or a
  // crashed one left it open): a read_committed consumer cannot pass them before it ends.
  const unresolved = view.unresolved(partition, key);
  if (unresolved.length > 0) return { kind: 'wait', target: Math.max(...unresolved) + 1 };
  return { kind: 'run', horizon: view.position('uncommitted', partition) };
}
