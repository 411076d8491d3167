/**
 * TransactionalProducerPool: a fixed set of transactional producers, each with a stable id
 * `<prefix>-<instance>-<slot>`, created up front and lent to one caller at a time.
 *
 * Why not generic-pool or tarn: they create and destroy resources on demand, and a destroyed
 * resource is replaced by a new one with a new identity. Here a slot's identity (its
 * transactional.id) is the point: it must survive replacement, so that re-initialising it fences
 * the broken producer and aborts what it left open, and the coordinator never holds more than
 * `size` of our ids. So the pool never grows or shrinks; a broken producer is replaced in place,
 * and the pool runs the transaction itself (begin, commit, abort) instead of handing out a
 * resource the caller could misuse.
 *
 * This class is the public face; the work is done by its parts: slot.ts (a slot's lifecycle and
 * its legal transitions), lending.ts (acquire and release), transaction-runner.ts (one
 * transaction), replacement.ts (replacing and renewing producers) and shutdown.ts (close).
 */
import { PoolClosedError, PoolStartError } from '../errors.js';
import { describe, PoolContext } from './context.js';
import { Lending } from './lending.js';
import { resolveOptions } from './options.js';
import { Replacement } from './replacement.js';
import { shutdown } from './shutdown.js';
import { TransactionRunner } from './transaction-runner.js';
import type { PoolOptions, PoolStats, RunOptions, Transaction, TransactionResult } from './types.js';

export class TransactionalProducerPool {
  private readonly ctx: PoolContext;
  private readonly lending: Lending;
  private readonly replacement: Replacement;
  private readonly runner: TransactionRunner;
  private closed: Promise<void> | undefined;

  constructor(options: PoolOptions) {
    this.ctx = new PoolContext(resolveOptions(options));
    this.lending = new Lending(this.ctx);
    this.replacement = new Replacement(this.ctx, (slot) => this.lending.release(slot));
    this.runner = new TransactionRunner(this.ctx, this.lending, this.replacement);
  }

  /** The transactional ids this pool uses, slot by slot. */
  get transactionalIds(): string[] {
    return this.ctx.slots.all.map((s) => s.transactionalId);
  }

  /**
   * Creates and initialises every producer. Fails (and closes what it created) if any cannot
   * initialise: a pool that starts half-working hides a broken configuration.
   */
  async start(): Promise<void> {
    const { ctx } = this;
    if (ctx.closing) throw new PoolClosedError('the pool is closed; create a new one');
    if (ctx.started) throw new PoolStartError('start() was already called');
    ctx.started = true;
    const results = await Promise.allSettled(ctx.slots.all.map((slot) => this.replacement.openProducer(slot)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed || ctx.closing) {
      ctx.closing = true;
      this.lending.rejectAll(new PoolClosedError('the pool failed to start'));
      await this.replacement.closeAll();
      if (!failed) throw new PoolClosedError('the pool was closed while it started');
      throw new PoolStartError(`could not initialise every producer: ${describe(failed.reason)}`, { cause: failed.reason });
    }
    for (const slot of ctx.slots.all) this.lending.makeAvailable(slot);
    this.replacement.startHealthChecks();
  }

  /**
   * Runs `work` inside one transaction on a producer nobody else can use meanwhile, then commits.
   * Resolves with work's value and every record's position once committed; otherwise throws a
   * TransactionError whose `outcome` says whether anything may be visible.
   */
  run<T>(work: (tx: Transaction) => Promise<T>, options: RunOptions = {}): Promise<TransactionResult<T>> {
    return this.ctx.track(this.runner.run(work, options));
  }

  stats(): PoolStats {
    const { slots, counters } = this.ctx;
    return {
      size: slots.all.length,
      idle: slots.count('idle'),
      busy: slots.count('busy'),
      replacing: slots.count('replacing'),
      waiting: this.lending.waiting,
      maxWaiting: this.ctx.options.maxWaiting,
      closed: this.ctx.closing,
      slots: slots.all.map((s) => ({
        slot: s.index,
        transactionalId: s.transactionalId,
        state: s.state,
        stateSince: s.stateSince,
        transactions: s.transactions,
        replacements: s.replacements,
        lastError: s.lastError,
      })),
      counters: { ...counters },
    };
  }

  /**
   * Stops lending (waiters and new callers get PoolClosedError), lets running transactions finish
   * within `timeoutMs`, aborts what is still open, and closes every producer. Idempotent.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closed ??= shutdown(this.ctx, this.lending, this.replacement, options.timeoutMs ?? this.ctx.options.closeTimeoutMs);
    return this.closed;
  }
}
