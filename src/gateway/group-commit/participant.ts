/**
 * What group commit asks of the pool, and the contract by which a request adds work of its own to
 * the transaction it joins (the idempotency key claim implements it). Kept apart from the
 * batching so that participants depend on this contract only.
 */
import type { RecordMetadata } from '../../pool/producer-port.js';
import type { RunOptions, Transaction, TransactionResult } from '../../pool/types.js';

/** The part of TransactionalProducerPool that group commit uses (the pool satisfies it). */
export interface TransactionRunner {
  run<T>(work: (tx: Transaction) => Promise<T>, opts?: RunOptions): Promise<TransactionResult<T>>;
}

/**
 * What a request adds to the transaction it joins, besides its records (the idempotency key
 * record hooks in here). Hooks run inside the pool's work callback, so they must not outlive it.
 */
export interface BatchParticipant {
  /**
   * Called when the transaction starts, before any data record is sent; anything it sends with
   * tx.send() before its first await is the transaction's first record on that partition.
   * Reject with ParticipantRejection to fail (or hand back) only this request.
   */
  begin?(tx: Transaction): Promise<void>;
  /** Called after every data record of the batch is acknowledged, before the commit. */
  finish?(tx: Transaction, records: RecordMetadata[]): Promise<void>;
  /** The transaction committed. */
  committed?(records: RecordMetadata[]): void;
  /** The transaction that carried this request was aborted: nothing it sent is visible. */
  aborted?(): void;
}

/** Thrown by a participant hook: only its own request fails, with `reason`. */
export class ParticipantRejection extends Error {
  constructor(readonly reason: unknown) {
    super('participant rejected its request', { cause: reason });
    this.name = 'ParticipantRejection';
  }
}
