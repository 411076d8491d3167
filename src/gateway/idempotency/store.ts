/**
 * Idempotency keys, stored in Kafka itself so they survive restarts and are shared by every
 * gateway instance on the cluster.
 *
 * Each key's outcome is a record in a compacted topic (default `txgate.idempotency`), keyed by
 * the idempotency key and written INSIDE the same transaction as the request's data, so it is
 * committed exactly when the data is. Its value is JSON {fingerprint, records, committedAt}.
 * A transaction that carries a key writes two records for it: a `pending` claim first (before
 * any data) and the outcome after the data's offsets are known.
 *
 * Two tailing consumers read the topic (manual assignment of every partition):
 * - a read_committed one builds the view of committed outcomes (loaded to its end at start);
 * - a read_uncommitted one sees claims as soon as they are written, committed or not.
 *
 * Deciding a key: the committed view answers for everything the committed consumer has passed;
 * records for the key between the two consumers' positions are "unresolved" (their transaction
 * may still be open), so we wait until the committed consumer passes them (a read_committed
 * consumer cannot pass an open transaction: this waits for the other writer's outcome).
 * The decision holds up to the read_uncommitted position at that moment, the "horizon".
 *
 * Closing the race between two writers of one key (a client retried at instance B while A is
 * still working): after our claim is acknowledged at offset C, and before we commit, we read the
 * partition up to C. If any other record for the key lies in [horizon, C), or a committed
 * outcome for it appeared at or after the horizon, someone else got there first: this request
 * leaves the transaction (it is aborted and its batch-mates resubmitted) and is decided again,
 * which now waits for the other writer's outcome. Kafka orders a partition totally, so of two
 * concurrent writers exactly the one with the later claim sees the other: at most one commits.
 *
 * Retention: a key is answered for `retentionMs` (default 24 h) after its outcome's committedAt;
 * after that a request with it runs as new. Older outcomes are skipped when loading and swept
 * from memory periodically, and the topic is created with cleanup.policy=compact,delete so that
 * the broker drops old records too (retention.ts). Expiry never touches records whose
 * transaction may still be open (view.ts), so the race above is closed as before, on one
 * assumption: the retention is far longer than a transaction can stay open (transaction.timeout.ms,
 * 60 s by default, at most the broker's transaction.max.timeout.ms, 15 min by default). Otherwise
 * an outcome could commit already expired, and a retry waiting for it would run again. The CLI
 * refuses a retention under 10 minutes or not above transaction.timeout.ms (config.ts).
 *
 * Memory: every instance knows every retained key, so a key costs only an entry in a compact
 * hash table (key-index.ts: a hash of the key, the offset of its outcome record, its committedAt;
 * 28 bytes a slot, at most 3/4 of the slots used), and only the most recent outcomes are held
 * in full (recent-outcomes.ts). Replaying an older key reads its outcome record back from the
 * topic by offset (replay.ts, log-outcome-reader.ts).
 *
 * This module starts and stops the store and decides a key. Kafka is reached only through the
 * ports (ports.ts, implemented in src/kafka, and in memory by the unit tests): topic-setup.ts has
 * the start-up steps, log-tail.ts the two tailing readers; partitioner.ts, record-format.ts,
 * view.ts, key-index.ts, key-hash.ts, recent-outcomes.ts, replay.ts, retention.ts and key-claim.ts
 * hold the rest.
 */
import { PoolClosedError } from '../../errors.js';
import { IdempotencyKeyInFlightError } from '../../errors.js';
import type { StartContext } from '../startup.js';
import { DEFAULT_IDEMPOTENCY_RETENTION_MS, DEFAULT_IDEMPOTENCY_TOPIC } from '../defaults.js';
import { decideKey } from './decision.js';
import { KeyClaim } from './key-claim.js';
import { LogOutcomeReader } from './log-outcome-reader.js';
import { tailLog, type TailOptions } from './log-tail.js';
import type { OutcomeReader } from './outcome-reader.js';
import { partitionForKey } from './partitioner.js';
import type { IdempotencyPorts, LogReader } from './ports.js';
import type { RecentOutcomesLimits } from './recent-outcomes.js';
import type { CommittedOutcome } from './record-format.js';
import { replayFromTopic } from './replay.js';
import { checkTopicRetention, ensureTopic, openTailReader, partitionCount, stableOffsets, type TopicSetup } from './topic-setup.js';
import { IdempotencyView } from './view.js';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface IdempotencyStoreOptions extends IdempotencyPorts {
  topic?: string;
  /** Partitions when the store creates the topic (an existing topic keeps its own; never add partitions later: keys would move). */
  partitions?: number;
  /** Deadline for deciding a key (waiting for another writer's outcome) and for verifying a claim. */
  catchUpTimeoutMs?: number;
  /** Deadline for loading the topic at start. */
  startTimeoutMs?: number;
  /**
   * How long a committed key is answered, from its commit (default 24 h). Must be far longer
   * than transaction.timeout.ms (store.ts's header says why); only the CLI enforces a floor.
   */
  retentionMs?: number;
  /** How often expired keys are freed from memory (default 1000; each sweep frees at most 5000). */
  sweepIntervalMs?: number;
  /** Reads outcome records back by offset, to replay keys not held in full (default: a reader of `log`, opened on first use). */
  outcomeReader?: OutcomeReader;
  /** Bounds of the outcomes held in full (default: the view's). */
  recentOutcomes?: RecentOutcomesLimits;
  /** The clock, in milliseconds since the epoch (default Date.now): commit times and expiry. */
  now?: () => number;
  logger?: Logger | undefined;
}

export type KeyDecision =
  | { kind: 'replay'; outcome: CommittedOutcome }
  | { kind: 'run'; claim: KeyClaim };

const silentLogger: Logger = { info() {}, warn() {}, error() {} };
/** Keys freed per sweep at most: about 10 ms of work, and 5000 expiries a second is more than a gateway's memory could hold for a day. */
const SWEEP_BATCH = 5_000;

export class IdempotencyStore {
  readonly topic: string;
  private readonly ports: IdempotencyPorts;
  private readonly createPartitions: number;
  private readonly catchUpTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly retentionMs: number;
  private readonly sweepIntervalMs: number;
  private readonly recentOutcomes: RecentOutcomesLimits | undefined;
  private readonly now: () => number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  private readonly inFlight = new Map<string, KeyClaim | null>();
  private reader: OutcomeReader | undefined;
  private outcomeReads = 0;
  private readonly readers: LogReader[] = [];
  private view: IdempotencyView | undefined;
  private state: 'new' | 'starting' | 'started' | 'closed' = 'new';
  private readonly loops: Promise<void>[] = [];

  constructor(opts: IdempotencyStoreOptions) {
    this.ports = { log: opts.log, admin: opts.admin };
    this.topic = opts.topic ?? DEFAULT_IDEMPOTENCY_TOPIC;
    this.createPartitions = opts.partitions ?? 3;
    this.catchUpTimeoutMs = opts.catchUpTimeoutMs ?? 5_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    this.retentionMs = opts.retentionMs ?? DEFAULT_IDEMPOTENCY_RETENTION_MS;
    if (!Number.isSafeInteger(this.retentionMs) || this.retentionMs <= 0) {
      throw new RangeError(`the idempotency retention must be a positive integer of milliseconds, got ${opts.retentionMs}`);
    }
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 1_000;
    this.recentOutcomes = opts.recentOutcomes;
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger ?? silentLogger;
    this.reader = opts.outcomeReader;
  }

  get keys(): number {
    return this.view?.size ?? 0;
  }

  /** Outcomes held in full, to replay without reading Kafka. */
  get cachedOutcomes(): number {
    return this.view?.cachedOutcomes ?? 0;
  }

  /** Reads of outcome records from Kafka, to replay keys not held in full. */
  get outcomesRead(): number {
    return this.outcomeReads;
  }

  get inFlightKeys(): number {
    return this.inFlight.size;
  }

  /**
   * Ensures the topic and loads it to its end (read_committed), then keeps tailing it. Every step
   * that talks to Kafka is retried until the start-up deadline (ctx.deadline; by default
   * startTimeoutMs from now), since a cluster that has just started, or a topic created a moment
   * ago, fails requests for a while; ctx.signal (the gateway closing meanwhile) stops it.
   */
  async start(startContext: Partial<StartContext> = {}): Promise<void> {
    if (this.state !== 'new') throw new Error(`the idempotency store cannot start: it is ${this.state}`);
    this.state = 'starting';
    const ctx: StartContext = { deadline: Date.now() + this.startTimeoutMs, logger: this.logger, ...startContext };
    const setup: TopicSetup = { ctx, topic: this.topic, admin: this.ports.admin, logger: this.logger, closed: () => this.state === 'closed' };
    try {
      const committed = await openTailReader(setup, this.ports.log, 'read_committed', 'connecting to Kafka (idempotency consumer)');
      this.readers.push(committed);
      const created = await ensureTopic(setup, { partitions: this.createPartitions, brokers: committed.brokers, retentionMs: this.retentionMs });
      const partitions = await partitionCount(setup, committed);
      if (!created) await checkTopicRetention(setup, this.retentionMs);
      const stable = await stableOffsets(setup, partitions);
      const view = new IdempotencyView(
        partitions,
        { uncommitted: stable },
        { retentionMs: this.retentionMs, now: this.now, ...(this.recentOutcomes ? { recentOutcomes: this.recentOutcomes } : {}) },
      );
      this.view = view;

      const uncommitted = await openTailReader(setup, this.ports.log, 'read_uncommitted', 'connecting to Kafka (pending-claims consumer)');
      this.readers.push(uncommitted);
      uncommitted.assign(stable.map((offset, partition) => ({ partition, offset })));
      this.tail(uncommitted, view, 'uncommitted', (partition, offset, key) => view.applyUncommitted(partition, offset, key));
      committed.assign(stable.map((_, partition) => ({ partition, offset: 'beginning' as const })));
      this.tail(committed, view, 'committed', (partition, offset, key, value) => view.applyCommitted(partition, offset, key, value));

      // Not retried as a whole: the tailing readers retry their own reads meanwhile.
      ctx.progress?.step(`loading the idempotency keys of ${this.topic}`);
      await Promise.all(
        stable.map((target, partition) =>
          view.waitFor('committed', partition, target, {
            timeoutMs: Math.max(1_000, ctx.deadline - Date.now()),
            signal: ctx.signal,
            what: `loading ${this.topic}`,
          }),
        ),
      );
      this.state = 'started';
      // Often and in slices: freeing a key costs about 2 µs, so a sweep a minute at thousands of
      // keyed requests a second would block the event loop for hundreds of milliseconds.
      this.sweepTimer = setInterval(() => view.sweep(SWEEP_BATCH), this.sweepIntervalMs).unref();
      this.logger.info(
        { topic: this.topic, partitions, keys: view.size, expiredSkipped: view.skippedExpired, retentionMs: this.retentionMs },
        'idempotency keys loaded',
      );
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /**
   * Decides a keyed request: replay an earlier committed outcome, or run it (the returned claim
   * holds the key in flight on this instance until release()). Throws
   * IdempotencyKeyInFlightError, IdempotencyKeyMismatchError or IdempotencyUnavailableError.
   */
  async begin(key: string, fingerprint: string, signal?: AbortSignal): Promise<KeyDecision> {
    const view = this.requireStarted();
    if (this.inFlight.has(key)) throw new IdempotencyKeyInFlightError(key);
    this.inFlight.set(key, null);
    try {
      const partition = partitionForKey(key, view.partitions);
      const horizon = await this.decide(view, key, fingerprint, partition, signal);
      if (typeof horizon !== 'number') {
        this.inFlight.delete(key);
        return { kind: 'replay', outcome: horizon };
      }
      const claim = new KeyClaim(
        key,
        fingerprint,
        horizon,
        { topic: this.topic, partition, view, verifyTimeoutMs: this.catchUpTimeoutMs, now: () => new Date(this.now()) },
        (c) => {
          if (this.inFlight.get(key) === c) this.inFlight.delete(key);
        },
      );
      this.inFlight.set(key, claim);
      return { kind: 'run', claim };
    } catch (err) {
      this.inFlight.delete(key);
      throw err;
    }
  }

  /** Decides again for a claim that lost a race (ClaimConflictError); the key stays in flight. */
  async redecide(claim: KeyClaim, signal?: AbortSignal): Promise<KeyDecision> {
    const view = this.requireStarted();
    const horizon = await this.decide(view, claim.key, claim.fingerprint, claim.partition, signal);
    if (typeof horizon !== 'number') return { kind: 'replay', outcome: horizon };
    claim.horizon = horizon;
    return { kind: 'run', claim };
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.sweepTimer);
    this.view?.failWaiters(new PoolClosedError('the idempotency store is closed'));
    // A poll in progress returns within its wait; closing a reader under it is unsafe.
    await Promise.all(this.loops);
    await Promise.all([...this.readers.map((r) => r.close()), this.reader?.close()]);
    await this.ports.admin.close();
  }

  /** A committed outcome, or the horizon up to which the key is known to be unused. */
  private async decide(
    view: IdempotencyView,
    key: string,
    fingerprint: string,
    partition: number,
    signal: AbortSignal | undefined,
  ): Promise<CommittedOutcome | number> {
    const deadline = Date.now() + this.catchUpTimeoutMs;
    for (;;) {
      const step = decideKey(view, key, fingerprint, partition);
      if (step.kind === 'replay') {
        if (step.outcome) return step.outcome;
        this.outcomeReads++;
        const read = await replayFromTopic(view, this.outcomeReader(), { key, fingerprint, partition, offset: step.offset }, {
          timeoutMs: deadline - Date.now(),
          signal,
        });
        if (read === 'decide-again') continue;
        return read;
      }
      if (step.kind === 'run') return step.horizon;
      await view.waitFor('committed', partition, step.target, {
        timeoutMs: deadline - Date.now(),
        signal,
        what: 'another transaction holding this idempotency key',
      });
    }
  }

  private outcomeReader(): OutcomeReader {
    if (this.state === 'closed') throw new PoolClosedError('the idempotency store is closed');
    this.reader ??= new LogOutcomeReader({
      log: this.ports.log,
      topic: this.topic,
      onError: (err) => this.logger.warn({ err: String(err) }, 'idempotency outcome reader error'),
    });
    return this.reader;
  }

  private requireStarted(): IdempotencyView {
    if (this.state === 'closed') throw new PoolClosedError('the idempotency store is closed');
    if (this.state !== 'started' || !this.view) throw new PoolClosedError('the idempotency store is not started');
    return this.view;
  }

  private tail(reader: LogReader, view: IdempotencyView, cursor: 'committed' | 'uncommitted', apply: TailOptions['apply']): void {
    this.loops.push(tailLog({ reader, view, cursor, apply, stopped: () => this.state === 'closed', logger: this.logger, topic: this.topic }));
  }
}
