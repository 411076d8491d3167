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
 */
import {
  AcquireAbortedError,
  PoolClosedError,
  PoolStartError,
  TransactionAbortedError,
  TransactionOutcomeUnknownError,
  ConfigurationError,
} from '../errors.js';
import { backoffDelay, sleep } from './backoff.js';
import { classify, isFencing, type TxStep } from './classify.js';
import type { RecordMetadata, TopicPartitionOffset, TransactionalProducer } from './producer-port.js';
import { TransactionHandle } from './transaction-handle.js';
import type {
  PoolOptions,
  PoolStats,
  ReplaceCause,
  RetryOptions,
  RunOptions,
  SlotState,
  Transaction,
  TransactionResult,
} from './types.js';
import { WaitQueue } from './wait-queue.js';

interface Slot {
  readonly index: number;
  readonly transactionalId: string;
  producer: TransactionalProducer | undefined;
  state: SlotState;
  transactions: number;
  replacements: number;
  lastUsedAt: number;
  lastError: string | undefined;
  /**
   * One per lending. close() aborts it at its deadline: the transaction must end now, by abort,
   * whatever phase it is in (retrying begin, inside the caller's work, committing).
   */
  force: AbortController;
  /** When this slot was last fenced (most recent last), to tell a fencing storm from a one-off. */
  fencedAt: number[];
}

type ResolvedOptions = Required<Omit<PoolOptions, 'events' | 'retry'>> & Pick<PoolOptions, 'events'> & { retry: RetryOptions };

const DEFAULTS = {
  acquireTimeoutMs: 5_000,
  initTimeoutMs: 30_000,
  commitTimeoutMs: 10_000,
  abortTimeoutMs: 10_000,
  closeTimeoutMs: 10_000,
  refreshIdleAfterMs: 24 * 60 * 60 * 1000,
  healthCheckIntervalMs: 60_000,
  replaceBackoffMs: 500,
  retry: { deadlineMs: 30_000, initialBackoffMs: 20, maxBackoffMs: 1_000 },
};

/** Fencings of one slot within this window count towards a fencing storm. */
const FENCING_STORM_WINDOW_MS = 5 * 60_000;
const FENCING_STORM_THRESHOLD = 3;

/** Outcome of the commit phase, before it is turned into a result or a typed error. */
type CommitOutcome = { ok: true; attempts: number } | { ok: false; outcome: 'aborted' | 'unknown'; error: unknown };

export class TransactionalProducerPool {
  private readonly options: ResolvedOptions;
  private readonly slots: Slot[];
  private readonly idle: Slot[] = [];
  private readonly waiters: WaitQueue<Slot>;
  /** Aborted on close: stops replacement loops and retry sleeps. */
  private readonly lifetime = new AbortController();
  private readonly inFlight = new Set<Promise<unknown>>();
  private healthTimer: NodeJS.Timeout | undefined;
  private started = false;
  private closing = false;
  private closed: Promise<void> | undefined;
  private readonly counters = { committed: 0, aborted: 0, outcomeUnknown: 0, retries: 0, replacements: 0, rejected: 0 };

  constructor(options: PoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new ConfigurationError('pool size must be an integer >= 1');
    if (!options.transactionalIdPrefix) throw new ConfigurationError('transactionalIdPrefix must not be empty');
    if (!options.instanceId) throw new ConfigurationError('instanceId must not be empty');
    this.options = {
      ...DEFAULTS,
      maxWaiting: options.size * 64,
      ...stripUndefined(options),
      retry: { ...DEFAULTS.retry, ...stripUndefined(options.retry ?? {}) },
    } as ResolvedOptions;
    this.waiters = new WaitQueue<Slot>(this.options.maxWaiting);
    this.slots = Array.from({ length: options.size }, (_, index) => ({
      index,
      transactionalId: `${options.transactionalIdPrefix}-${options.instanceId}-${index}`,
      producer: undefined,
      state: 'starting' as SlotState,
      transactions: 0,
      replacements: 0,
      lastUsedAt: Date.now(),
      lastError: undefined,
      force: new AbortController(),
      fencedAt: [],
    }));
  }

  /** The transactional ids this pool uses, slot by slot. */
  get transactionalIds(): string[] {
    return this.slots.map((s) => s.transactionalId);
  }

  /**
   * Creates and initialises every producer. Fails (and closes what it created) if any cannot
   * initialise: a pool that starts half-working hides a broken configuration.
   */
  async start(): Promise<void> {
    if (this.closing) throw new PoolClosedError('the pool is closed; create a new one');
    if (this.started) throw new PoolStartError('start() was already called');
    this.started = true;
    const results = await Promise.allSettled(this.slots.map((slot) => this.initSlot(slot)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed || this.closing) {
      this.closing = true;
      this.waiters.rejectAll(new PoolClosedError('the pool failed to start'));
      await Promise.all(this.slots.map((slot) => this.closeProducer(slot)));
      for (const slot of this.slots) slot.state = 'closed';
      if (!failed) throw new PoolClosedError('the pool was closed while it started');
      throw new PoolStartError(`could not initialise every producer: ${describe(failed.reason)}`, { cause: failed.reason });
    }
    for (const slot of this.slots) this.makeAvailable(slot);
    this.healthTimer = setInterval(() => this.checkHealth(), this.options.healthCheckIntervalMs);
    this.healthTimer.unref();
  }

  /**
   * Runs `work` inside one transaction on a producer nobody else can use meanwhile, then commits.
   * Resolves with work's value and every record's position once committed; otherwise throws a
   * TransactionError whose `outcome` says whether anything may be visible.
   */
  run<T>(work: (tx: Transaction) => Promise<T>, options: RunOptions = {}): Promise<TransactionResult<T>> {
    const task = this.runOnSlot(work, options);
    this.inFlight.add(task);
    const forget = () => this.inFlight.delete(task);
    task.then(forget, forget);
    return task;
  }

  private async runOnSlot<T>(work: (tx: Transaction) => Promise<T>, options: RunOptions): Promise<TransactionResult<T>> {
    const slot = await this.acquire(options);
    if (options.signal?.aborted) {
      // The caller gave up in the instant between being handed a producer and beginning.
      this.release(slot);
      this.reject('aborted');
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
        this.counters.aborted++;
        this.options.events?.aborted?.({ slot: slot.index, durationMs: Date.now() - startedAt, reason: error });
      } else {
        this.counters.outcomeUnknown++;
        this.options.events?.outcomeUnknown?.({ slot: slot.index, durationMs: Date.now() - startedAt, reason: error });
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
    this.counters.committed++;
    this.options.events?.committed?.({
      slot: slot.index,
      durationMs: Date.now() - startedAt,
      records: records.length,
      commitAttempts: commit.attempts,
    });
    this.release(slot);
    return { value, records, transactionalId: slot.transactionalId, slot: slot.index };
  }

  /**
   * Commits, retrying what librdkafka calls retriable (including a commit timeout: the commit may
   * have gone through, so aborting would be wrong and librdkafka refuses it anyway). Releases or
   * replaces the slot in every outcome.
   */
  private async commit(slot: Slot, producer: TransactionalProducer): Promise<CommitOutcome> {
    // The retry budget starts at the first failure, so a commit timeout longer than the budget
    // still gets its retries.
    let deadline = Infinity;
    let ambiguous = false; // an earlier attempt timed out: it may have committed
    for (let attempt = 0; ; attempt++) {
      try {
        await producer.commit(this.options.commitTimeoutMs);
        return { ok: true, attempts: attempt + 1 };
      } catch (error) {
        const action = classify(error, 'commit');
        if (deadline === Infinity) deadline = Date.now() + this.options.retry.deadlineMs;
        if (action === 'retry' && Date.now() < deadline && !slot.force.signal.aborted) {
          ambiguous = true;
          this.noteRetry(slot, 'commit', error);
          await sleep(backoffDelay(attempt, this.options.retry.initialBackoffMs, this.options.retry.maxBackoffMs));
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
        this.replace(slot, isFencing(error) ? 'fenced' : action === 'replace' ? 'fatal' : 'unknown-state', error);
        return { ok: false, outcome, error };
      }
    }
  }

  /** Ends a transaction that sent nothing: there is nothing to make visible, so abort it. */
  private async endEmpty(slot: Slot, producer: TransactionalProducer): Promise<CommitOutcome> {
    try {
      await producer.abort(this.options.abortTimeoutMs);
      return { ok: true, attempts: 0 };
    } catch (error) {
      // Nothing was sent, so nothing can be visible whatever the producer's state.
      this.replace(slot, isFencing(error) ? 'fenced' : 'unknown-state', error);
      return { ok: false, outcome: 'aborted', error };
    }
  }

  private async sendOffsets(
    slot: Slot,
    producer: TransactionalProducer,
    offsets: TopicPartitionOffset[],
    consumer: unknown,
  ): Promise<void> {
    await this.withRetry(slot, 'send-offsets', () => producer.sendOffsets(offsets, consumer, this.options.commitTimeoutMs));
  }

  /** Repeats `call` while its errors are retriable and the retry deadline allows. */
  private async withRetry(slot: Slot, step: 'begin' | 'send-offsets', call: () => Promise<void>): Promise<void> {
    let deadline = Infinity;
    const forced = slot.force.signal;
    for (let attempt = 0; ; attempt++) {
      if (forced.aborted) throw forced.reason;
      try {
        return await call();
      } catch (error) {
        if (deadline === Infinity) deadline = Date.now() + this.options.retry.deadlineMs;
        if (classify(error, step) !== 'retry' || Date.now() >= deadline || forced.aborted) throw error;
        this.noteRetry(slot, step, error);
        await sleep(backoffDelay(attempt, this.options.retry.initialBackoffMs, this.options.retry.maxBackoffMs), forced);
      }
    }
  }

  private noteRetry(slot: Slot, step: 'begin' | 'commit' | 'send-offsets', error: unknown): void {
    this.counters.retries++;
    this.options.events?.retried?.({ slot: slot.index, step, error });
  }

  /**
   * After a failed begin: only an abortable error leaves the producer trustworthy. One that
   * still fails after retrying is replaced (kafka-facts: a producer that failed in begin must not
   * be lent again).
   */
  private afterFailure(slot: Slot, error: unknown, step: TxStep): void {
    if (classify(error, step) === 'abort') this.release(slot);
    else this.replace(slot, isFencing(error) ? 'fenced' : 'fatal', error);
  }

  /**
   * Aborts the open transaction; if even that fails, the producer's state is unknown: replace it.
   * Returns the error that made the producer unusable, if one did.
   */
  private async abortOrReplace(slot: Slot, reason: unknown, renewAfterAbort = false): Promise<unknown> {
    const producer = slot.producer;
    if (!producer) return undefined;
    // A fenced producer cannot abort; the new producer's init aborts for it.
    if (classify(reason, 'send') === 'replace') {
      this.replace(slot, isFencing(reason) ? 'fenced' : 'fatal', reason);
      return reason;
    }
    const deadline = Date.now() + this.options.retry.deadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await producer.abort(this.options.abortTimeoutMs);
        // After the broker refused a record, librdkafka (2.15) purges the first record the
        // next transaction sends to that partition (_PURGE_QUEUE), failing a healthy caller.
        // A fresh producer with the same id has no such leftover state.
        if (renewAfterAbort) this.replace(slot, 'record-refused', reason);
        else this.release(slot);
        return undefined;
      } catch (error) {
        if (classify(error, 'abort') === 'retry' && Date.now() < deadline && !slot.force.signal.aborted) {
          await sleep(backoffDelay(attempt, this.options.retry.initialBackoffMs, this.options.retry.maxBackoffMs));
          continue;
        }
        this.replace(slot, isFencing(error) ? 'fenced' : 'unknown-state', error);
        return error;
      }
    }
  }

  // ------------------------------------------------------------------ lending

  private async acquire(options: RunOptions): Promise<Slot> {
    if (!this.started || this.closing) {
      this.reject('closed');
      throw new PoolClosedError(this.started ? 'the pool is closing' : 'the pool was not started');
    }
    if (options.signal?.aborted) {
      this.reject('aborted');
      throw new AcquireAbortedError(options.signal.reason);
    }
    const since = Date.now();
    let slot = this.idle.shift();
    if (!slot) {
      try {
        slot = await this.waiters.wait(options.acquireTimeoutMs ?? this.options.acquireTimeoutMs, options.signal);
      } catch (error) {
        const code = (error as { code?: string }).code;
        this.reject(code === 'TXGATE_POOL_SATURATED' ? 'saturated' : code === 'TXGATE_ACQUIRE_TIMEOUT' ? 'timeout' : code === 'TXGATE_POOL_CLOSED' ? 'closed' : 'aborted');
        throw error;
      }
    }
    slot.state = 'busy';
    slot.force = new AbortController();
    slot.lastUsedAt = Date.now();
    this.options.events?.acquired?.({ slot: slot.index, waitedMs: Date.now() - since });
    return slot;
  }

  private reject(reason: 'saturated' | 'timeout' | 'aborted' | 'closed'): void {
    this.counters.rejected++;
    this.options.events?.rejected?.({ reason });
  }

  /** The slot's producer is healthy again: hand it to the longest waiter, or park it. */
  private release(slot: Slot): void {
    if (slot.state === 'closed') return;
    slot.lastUsedAt = Date.now();
    this.makeAvailable(slot);
  }

  private makeAvailable(slot: Slot): void {
    if (this.closing) {
      slot.state = 'idle';
      return;
    }
    slot.state = 'busy';
    if (this.waiters.serve(slot)) return;
    slot.state = 'idle';
    this.idle.push(slot);
  }

  // ------------------------------------------------------------------ replacement and health

  private async initSlot(slot: Slot): Promise<void> {
    const producer = this.options.producerFactory(slot.transactionalId);
    slot.producer = producer;
    try {
      await producer.init(this.options.initTimeoutMs);
      slot.lastError = undefined;
    } catch (error) {
      slot.lastError = describe(error);
      slot.producer = undefined;
      await producer.close(this.options.closeTimeoutMs);
      throw error;
    }
  }

  private async closeProducer(slot: Slot): Promise<void> {
    const producer = slot.producer;
    slot.producer = undefined;
    if (producer) await producer.close(this.options.closeTimeoutMs);
  }

  /**
   * Closes the slot's producer and creates a new one with the same transactional id, retrying
   * until it initialises or the pool closes. Runs in the background: the caller that hit the
   * error gets its answer at once, and the other slots keep serving.
   */
  private replace(slot: Slot, cause: ReplaceCause, error?: unknown): void {
    if (slot.state === 'replacing' || slot.state === 'closed') return;
    slot.state = 'replacing';
    slot.lastError = error === undefined ? slot.lastError : describe(error);
    this.counters.replacements++;
    this.options.events?.replacing?.({ slot: slot.index, transactionalId: slot.transactionalId, cause, error });
    const job = this.replaceLoop(slot, cause);
    this.inFlight.add(job);
    const forget = () => this.inFlight.delete(job);
    job.then(forget, forget);
  }

  private async replaceLoop(slot: Slot, cause: ReplaceCause): Promise<void> {
    await this.closeProducer(slot);
    if (cause === 'fenced' && !(await this.backOffFromFencingStorm(slot))) {
      slot.state = 'closed';
      return;
    }
    for (let attempt = 0; !this.closing; attempt++) {
      try {
        await this.initSlot(slot);
      } catch {
        const delay = backoffDelay(attempt, this.options.replaceBackoffMs, 30_000);
        if (!(await sleep(delay, this.lifetime.signal, true))) break;
        continue;
      }
      if (this.closing) break;
      slot.replacements++;
      this.options.events?.replaced?.({ slot: slot.index, transactionalId: slot.transactionalId, cause });
      this.release(slot);
      return;
    }
    await this.closeProducer(slot);
    slot.state = 'closed';
  }

  /**
   * Being fenced again and again means another live process holds the same transactional id
   * (two instances configured with one instance id). Re-initialising at once would fence it back
   * and the two would take turns failing each other's transactions; so repeated fencing waits,
   * longer each time (up to a minute), and says loudly what is going on. Resolves false if the
   * pool closed meanwhile.
   */
  private async backOffFromFencingStorm(slot: Slot): Promise<boolean> {
    const now = Date.now();
    slot.fencedAt = [...slot.fencedAt.filter((t) => now - t < FENCING_STORM_WINDOW_MS), now];
    const recent = slot.fencedAt.length;
    if (recent < FENCING_STORM_THRESHOLD) return true;
    const delayMs = Math.min(60_000, this.options.replaceBackoffMs * 2 ** (recent - FENCING_STORM_THRESHOLD + 1));
    this.options.events?.fencingStorm?.({ slot: slot.index, transactionalId: slot.transactionalId, fencings: recent, delayMs });
    return sleep(delayMs, this.lifetime.signal, true);
  }

  /**
   * Re-initialises slots that sat idle long enough to approach transactional.id.expiration.ms
   * (the coordinator forgets ids without status updates; a later init would then start a new
   * producer id silently). Re-init bumps the epoch and refreshes the id's timestamp.
   */
  private checkHealth(): void {
    if (this.closing) return;
    const now = Date.now();
    for (const slot of [...this.idle]) {
      if (now - slot.lastUsedAt < this.options.refreshIdleAfterMs) continue;
      this.idle.splice(this.idle.indexOf(slot), 1);
      this.replace(slot, 'refresh');
    }
  }

  // ------------------------------------------------------------------ observation and close

  stats(): PoolStats {
    const count = (state: SlotState) => this.slots.filter((s) => s.state === state).length;
    return {
      size: this.slots.length,
      idle: count('idle'),
      busy: count('busy'),
      replacing: count('replacing'),
      waiting: this.waiters.length,
      closed: this.closing,
      slots: this.slots.map((s) => ({
        slot: s.index,
        transactionalId: s.transactionalId,
        state: s.state,
        transactions: s.transactions,
        replacements: s.replacements,
        lastError: s.lastError,
      })),
      counters: { ...this.counters },
    };
  }

  /**
   * Stops lending (waiters and new callers get PoolClosedError), lets running transactions finish
   * within `timeoutMs`, aborts what is still open, and closes every producer. Idempotent.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closed ??= this.shutdown(options.timeoutMs ?? this.options.closeTimeoutMs);
    return this.closed;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.waiters.rejectAll(new PoolClosedError('the pool is closing'));
    this.lifetime.abort();
    const deadline = new AbortController();
    const finished = await Promise.race([this.drain(), sleep(timeoutMs, deadline.signal).then(() => false)]);
    deadline.abort();
    if (!finished) {
      // Work that outlived the deadline is interrupted and its transaction aborted by its own
      // run(), so no producer call ever overlaps another. A commit or begin in progress stops
      // retrying and ends within its own timeout.
      for (const slot of this.slots) {
        if (slot.state === 'busy') slot.force.abort(new PoolClosedError('the pool closed before this transaction finished'));
      }
      await this.drain();
    }
    this.idle.length = 0;
    await Promise.all(this.slots.map((slot) => this.closeProducer(slot)));
    for (const slot of this.slots) slot.state = 'closed';
  }

  /** Resolves once no run() and no replacement is in flight, including ones started meanwhile. */
  private async drain(): Promise<true> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    return true;
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

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
