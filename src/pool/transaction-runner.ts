/**
 * Runs one caller's transaction: borrows a slot, then begin, the caller's work, and commit (or
 * abort), with retries where classify() says so. Every path ends by giving the slot back to
 * lending or handing it to replacement, and reports the outcome as a typed error or a result.
 */
import { AcquireAbortedError, TransactionAbortedError, TransactionOutcomeUnknownError } from '../errors.js';
import { backoffDelay, sleep } from './backoff.js';
import { classify, isFencing, type TxStep } from './classify.js';
import { describe, type PoolContext } from './context.js';
import type { Lending } from './lending.js';
import type { RecordMetadata, TopicPartitionOffset, TransactionalProducer } from './producer-port.js';
import type { Replacement } from './replacement.js';
import type { Slot } from './slot.js';
import { TransactionHandle } from './transaction-handle.js';
import type { RunOptions, Transaction, TransactionResult } from './types.js';

/** Outcome of the commit phase, before it is turned into a result or a typed error. */
type CommitOutcome = { ok: true; attempts: number } | { ok: false; outcome: 'aborted' | 'unknown'; error: unknown };

export class TransactionRunner {
  constructor(
    private readonly ctx: PoolContext,
    private readonly lending: Lending,
    private readonly replacement: Pick<Replacement, 'replace'>,
  ) {}

  // One async function from acquire to release, on purpose: the caller's promise settles in the
  // same turn the slot is handed to the next waiter, before that waiter's run goes on, so a
  // caller that gives up on seeing the previous result is still refused before it begins.
  async run<T>(work: (tx: Transaction) => Promise<T>, options: RunOptions): Promise<TransactionResult<T>> {
    const { ctx } = this;
    const slot = await this.lending.acquire(options);
    if (options.signal?.aborted) {
      // The caller gave up in the instant between being handed a producer and beginning.
      this.lending.release(slot);
      this.lending.reject('aborted');
      throw new AcquireAbortedError(options.signal.reason);
    }
    const producer = slot.producer!;
    const forced = slot.force.signal;
    const startedAt = Date.now();
    const fail = (error: unknown, outcome: 'aborted' | 'unknown', message: string) => {
      const typed =
        outcome === 'aborted'
          ? new TransactionAbortedError(message, { cause: error, transactionalId: slot.transactionalId })
          : new TransactionOutcomeUnknownError(message, { cause: error, transactionalId: slot.transactionalId });
      if (outcome === 'aborted') {
        ctx.counters.aborted++;
        ctx.options.events?.aborted?.({ slot: slot.index, durationMs: Date.now() - startedAt, reason: error });
      } else {
        ctx.counters.outcomeUnknown++;
        ctx.options.events?.outcomeUnknown?.({ slot: slot.index, durationMs: Date.now() - startedAt, reason: error });
      }
      return typed;
    };

    try {
      await this.withRetry(slot, 'begin', () => producer.begin());
    } catch (error) {
      // Nothing was sent: the producer either recovers or is replaced.
      this.afterFailure(slot, error, 'begin');
      throw fail(error, 'aborted', `could not begin a transaction: ${describe(error)}`);
    }

    const tx = new TransactionHandle(slot.transactionalId, slot.index, producer, (offsets, consumer) =>
      this.sendOffsets(slot, producer, offsets, consumer),
    );
    let value: T;
    let records: RecordMetadata[];
    try {
      // close() at its deadline interrupts the work: the run settles now, aborted, and whatever
      // the work does later meets a dead handle.
      value = await Promise.race([work(tx), rejectWhenAborted(forced)]);
      tx.close();
      records = await Promise.race([tx.settle(), rejectWhenAborted(forced)]);
    } catch (error) {
      tx.close();
      // An offset commit still retrying would overlap the abort; it stops soon, being forced.
      await tx.settleOffsets();
      // When the abort reveals that the producer was fenced or broke, that is the news the
      // caller needs (the work's own error is often just a purged delivery).
      const fatal = await this.abortOrReplace(slot, error, tx.refusedByBroker);
      throw fail(fatal ?? error, 'aborted', `transaction aborted: ${describe(fatal ?? error)}`);
    }

    // KIP-890 brokers refuse to commit an empty transaction; with nothing sent there is nothing
    // to commit, and librdkafka ends an empty transaction locally.
    const commit = tx.isEmpty ? await this.endEmpty(slot, producer) : await this.commit(slot, producer);
    if (!commit.ok) {
      throw fail(
        commit.error,
        commit.outcome,
        commit.outcome === 'aborted'
          ? `commit failed and the transaction was aborted: ${describe(commit.error)}`
          : `commit outcome unknown: ${describe(commit.error)}`,
      );
    }
    slot.transactions++;
    ctx.counters.committed++;
    ctx.options.events?.committed?.({
      slot: slot.index,
      durationMs: Date.now() - startedAt,
      records: records.length,
      commitAttempts: commit.attempts,
    });
    this.lending.release(slot);
    return { value, records, transactionalId: slot.transactionalId, slot: slot.index };
  }

  /**
   * Commits, retrying what librdkafka calls retriable (including a commit timeout: the commit may
   * have gone through, so aborting would be wrong and librdkafka refuses it anyway). Releases or
   * replaces the slot in every outcome.
   */
  private async commit(slot: Slot, producer: TransactionalProducer): Promise<CommitOutcome> {
    const { options } = this.ctx;
    // The retry budget starts at the first failure, so a commit timeout longer than the budget
    // still gets its retries.
    let deadline = Infinity;
    let ambiguous = false; // an earlier attempt timed out: it may have committed
    for (let attempt = 0; ; attempt++) {
      try {
        await producer.commit(options.commitTimeoutMs);
        return { ok: true, attempts: attempt + 1 };
      } catch (error) {
        const action = classify(error, 'commit');
        if (deadline === Infinity) deadline = Date.now() + options.retry.deadlineMs;
        if (action === 'retry' && Date.now() < deadline && !slot.force.signal.aborted) {
          ambiguous = true;
          this.noteRetry(slot, 'commit', error);
          await sleep(backoffDelay(attempt, options.retry.initialBackoffMs, options.retry.maxBackoffMs));
          continue;
        }
        if (action === 'abort') {
          const fatal = await this.abortOrReplace(slot, error);
          return { ok: false, outcome: ambiguous ? 'unknown' : 'aborted', error: fatal ?? error };
        }
        // Out of retries, fenced or fatal: this producer is done, and the commit may have gone
        // through. Even fencing on our first attempt: librdkafka retries EndTxn by itself, so an
        // EndTxn that committed but whose answer was lost is retried, and the retry meets the new
        // holder's epoch. Reporting that as aborted would invite a retry that writes twice.
        const outcome = 'unknown';
        this.replacement.replace(slot, isFencing(error) ? 'fenced' : action === 'replace' ? 'fatal' : 'unknown-state', error);
        return { ok: false, outcome, error };
      }
    }
  }

  /** Ends a transaction that sent nothing: there is nothing to make visible, so abort it. */
  private async endEmpty(slot: Slot, producer: TransactionalProducer): Promise<CommitOutcome> {
    try {
      await producer.abort(this.ctx.options.abortTimeoutMs);
      return { ok: true, attempts: 0 };
    } catch (error) {
      // Nothing was sent, so nothing can be visible whatever the producer's state.
      this.replacement.replace(slot, isFencing(error) ? 'fenced' : 'unknown-state', error);
      return { ok: false, outcome: 'aborted', error };
    }
  }

  private async sendOffsets(
    slot: Slot,
    producer: TransactionalProducer,
    offsets: TopicPartitionOffset[],
    consumer: unknown,
  ): Promise<void> {
    await this.withRetry(slot, 'send-offsets', () => producer.sendOffsets(offsets, consumer, this.ctx.options.commitTimeoutMs));
  }

  /** Repeats `call` while its errors are retriable and the retry deadline allows. */
  private async withRetry(slot: Slot, step: 'begin' | 'send-offsets', call: () => Promise<void>): Promise<void> {
    const { retry } = this.ctx.options;
    let deadline = Infinity;
    const forced = slot.force.signal;
    for (let attempt = 0; ; attempt++) {
      if (forced.aborted) throw forced.reason;
      try {
        return await call();
      } catch (error) {
        if (deadline === Infinity) deadline = Date.now() + retry.deadlineMs;
        if (classify(error, step) !== 'retry' || Date.now() >= deadline || forced.aborted) throw error;
        this.noteRetry(slot, step, error);
        await sleep(backoffDelay(attempt, retry.initialBackoffMs, retry.maxBackoffMs), forced);
      }
    }
  }

  private noteRetry(slot: Slot, step: 'begin' | 'commit' | 'send-offsets', error: unknown): void {
    this.ctx.counters.retries++;
    this.ctx.options.events?.retried?.({ slot: slot.index, step, error });
  }

  /**
   * After a failed begin: only an abortable error leaves the producer trustworthy. One that
   * still fails after retrying is replaced (a producer that failed in begin must not be lent
   * again).
   */
  private afterFailure(slot: Slot, error: unknown, step: TxStep): void {
    if (classify(error, step) === 'abort') this.lending.release(slot);
    else this.replacement.replace(slot, isFencing(error) ? 'fenced' : 'fatal', error);
  }

  /**
   * Aborts the open transaction; if even that fails, the producer's state is unknown: replace it.
   * Returns the error that made the producer unusable, if one did.
   */
  private async abortOrReplace(slot: Slot, reason: unknown, renewAfterAbort = false): Promise<unknown> {
    const { options } = this.ctx;
    const producer = slot.producer;
    if (!producer) return undefined;
    // A fenced producer cannot abort; the new producer's init aborts for it.
    if (classify(reason, 'send') === 'replace') {
      this.replacement.replace(slot, isFencing(reason) ? 'fenced' : 'fatal', reason);
      return reason;
    }
    const deadline = Date.now() + options.retry.deadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await producer.abort(options.abortTimeoutMs);
        // After the broker refused a record, librdkafka (2.15) purges the first record the
        // next transaction sends to that partition (_PURGE_QUEUE), failing a healthy caller.
        // A fresh producer with the same id has no such leftover state.
        if (renewAfterAbort) this.replacement.replace(slot, 'record-refused', reason);
        else this.lending.release(slot);
        return undefined;
      } catch (error) {
        if (classify(error, 'abort') === 'retry' && Date.now() < deadline && !slot.force.signal.aborted) {
          await sleep(backoffDelay(attempt, options.retry.initialBackoffMs, options.retry.maxBackoffMs));
          continue;
        }
        this.replacement.replace(slot, isFencing(error) ? 'fenced' : 'unknown-state', error);
        return error;
      }
    }
  }
}

/** A promise that rejects with the signal's reason once it aborts (and never resolves). */
function rejectWhenAborted(signal: AbortSignal): Promise<never> {
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
  aborted.catch(() => {});
  return aborted;
}
