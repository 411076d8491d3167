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
 * in full
 * (recent-outcomes.ts). Replaying an older key reads its outcome record back from the topic by
 * offset (replay.ts, kafka-outcome-reader.ts).
 *
 * This module is the Kafka side (admin, topic creation, the two tailing consumers) and the
 * decision for a key; partitioner.ts, record-format.ts, view.ts, key-index.ts, key-hash.ts,
 * recent-outcomes.ts, replay.ts, retention.ts and key-claim.ts hold the rest.
 */
import kafka from '@confluentinc/kafka-javascript';
import type {
  DeleteRecordsResult,
  IAdminClient,
  KafkaConsumer as RdKafkaConsumer,
  LibrdKafkaError,
  Message,
  Metadata,
} from '@confluentinc/kafka-javascript';
import { PoolClosedError } from '../../errors.js';
import { retryStep, type StartContext } from '../startup.js';
import {
  IdempotencyKeyInFlightError,
  IdempotencyUnavailableError,
} from '../../errors.js';
import { decideKey } from './decision.js';
import { KafkaOutcomeReader } from './kafka-outcome-reader.js';
import { KeyClaim } from './key-claim.js';
import type { OutcomeReader } from './outcome-reader.js';
import { partitionForKey } from './partitioner.js';
import { replayFromTopic } from './replay.js';
import { DEFAULT_IDEMPOTENCY_RETENTION_MS, DEFAULT_IDEMPOTENCY_TOPIC } from '../defaults.js';
import { topicRetentionConfig } from './retention.js';
import type { CommittedOutcome } from './record-format.js';
import { IdempotencyView, type Cursor } from './view.js';

const { AdminClient, KafkaConsumer, IsolationLevel, OffsetSpec } = kafka;

export type KafkaProps = Record<string, string | number | boolean>;

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface IdempotencyStoreOptions {
  kafka: KafkaProps;
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
  /** Reads outcome records back by offset, to replay keys not held in full (default: a Kafka consumer, created on first use). */
  outcomeReader?: OutcomeReader;
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
  private readonly kafka: KafkaProps;
  private readonly createPartitions: number;
  private readonly catchUpTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly retentionMs: number;
  private readonly sweepIntervalMs: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  private readonly inFlight = new Map<string, KeyClaim | null>();
  private reader: OutcomeReader | undefined;
  private outcomeReads = 0;
  private admin: IAdminClient | undefined;
  private committedConsumer: RdKafkaConsumer | undefined;
  private uncommittedConsumer: RdKafkaConsumer | undefined;
  private view: IdempotencyView | undefined;
  private state: 'new' | 'starting' | 'started' | 'closed' = 'new';
  private readonly loops: Promise<void>[] = [];

  constructor(opts: IdempotencyStoreOptions) {
    this.kafka = opts.kafka;
    this.topic = opts.topic ?? DEFAULT_IDEMPOTENCY_TOPIC;
    this.createPartitions = opts.partitions ?? 3;
    this.catchUpTimeoutMs = opts.catchUpTimeoutMs ?? 5_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    this.retentionMs = opts.retentionMs ?? DEFAULT_IDEMPOTENCY_RETENTION_MS;
    if (!Number.isSafeInteger(this.retentionMs) || this.retentionMs <= 0) {
      throw new RangeError(`the idempotency retention must be a positive integer of milliseconds, got ${opts.retentionMs}`);
    }
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 1_000;
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
    const closed = () => this.state === 'closed';
    try {
      this.admin = AdminClient.create({ ...this.kafka, 'client.id': 'txgate-idempotency-admin' } as never);
      const { consumer: committed, metadata } = await connect(ctx, 'connecting to Kafka (idempotency consumer)', () => this.newConsumer('read_committed'), closed);
      this.committedConsumer = committed;
      const created = await this.ensureTopic(ctx, metadata.brokers.length);
      const partitions = await this.partitionCount(ctx, committed);
      if (!created) await this.checkTopicRetention(ctx);
      const stable = await this.listOffsets(ctx, partitions, 'committed');
      const view = new IdempotencyView(partitions, { uncommitted: stable }, { retentionMs: this.retentionMs });
      this.view = view;

      const { consumer: uncommitted } = await connect(ctx, 'connecting to Kafka (pending-claims consumer)', () => this.newConsumer('read_uncommitted'), closed);
      this.uncommittedConsumer = uncommitted;
      uncommitted.assign(stable.map((offset, partition) => ({ topic: this.topic, partition, offset })));
      this.tail(uncommitted, 'uncommitted', (m) => view.applyUncommitted(m.partition, m.offset, keyOf(m)));

      committed.assign(stable.map((_, partition) => ({ topic: this.topic, partition, offset: -2 /* beginning */ })));
      this.tail(committed, 'committed', (m) => view.applyCommitted(m.partition, m.offset, keyOf(m), m.value));

      // Not retried as a whole: the tailing consumer retries its own reads meanwhile.
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
        { topic: this.topic, partition, view, verifyTimeoutMs: this.catchUpTimeoutMs, now: () => new Date() },
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
    // A consume call in progress returns within its timeout; disconnecting under it is unsafe.
    await Promise.all(this.loops);
    await Promise.all([disconnect(this.committedConsumer), disconnect(this.uncommittedConsumer), this.reader?.close()]);
    this.admin?.disconnect();
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
    this.reader ??= new KafkaOutcomeReader({ kafka: this.kafka, topic: this.topic, logger: this.logger });
    return this.reader;
  }

  private requireStarted(): IdempotencyView {
    if (this.state === 'closed') throw new PoolClosedError('the idempotency store is closed');
    if (this.state !== 'started' || !this.view) throw new PoolClosedError('the idempotency store is not started');
    return this.view;
  }

  private newConsumer(isolation: 'read_committed' | 'read_uncommitted'): RdKafkaConsumer {
    const consumer = new KafkaConsumer(
      {
        ...this.kafka,
        'group.id': `txgate-idempotency-${process.pid}-${Math.random().toString(36).slice(2)}`,
        'client.id': `txgate-idempotency-${isolation === 'read_committed' ? 'committed' : 'pending'}`,
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'enable.partition.eof': true,
        'isolation.level': isolation,
        // An idle partition's end (which is how we pass a trailing commit marker) is noticed
        // one empty fetch later; keep that short.
        'fetch.wait.max.ms': 100,
        // Loading at start reads the whole topic, faster than JavaScript takes the records: once
        // the client's queue is full, it fetches again only after fetch.queue.backoff.ms (1 s by
        // default), and meanwhile the queue runs dry; that halved the loading speed. Bigger
        // fetches help a little more.
        'fetch.queue.backoff.ms': 10,
        'max.partition.fetch.bytes': 8 * 1024 * 1024,
      } as never,
      { 'auto.offset.reset': 'earliest' },
    );
    consumer.on('event.error', (err: LibrdKafkaError) => this.logger.warn({ err: String(err), isolation }, 'idempotency consumer error'));
    return consumer;
  }

  /**
   * Reads `consumer` in a pull loop (consume(n, cb)). Not the client's flowing mode: its
   * disconnect drops messages still queued for JavaScript without freeing them, and librdkafka's
   * destroy then waits for them forever. Here nothing is in flight once the loop has stopped.
   */
  private tail(consumer: RdKafkaConsumer, cursor: Cursor, apply: (m: Message) => void): void {
    consumer.on('data', (m: Message) => {
      if (m.topic === this.topic) apply(m);
    });
    consumer.on('partition.eof', (e: { topic: string; partition: number; offset: number }) => {
      if (e.topic === this.topic) this.view?.advance(cursor, e.partition, e.offset);
    });
    // Wait at most this long for the first message of a batch, not for the batch to fill.
    consumer.setDefaultConsumeTimeout(250);
    // (in the client since 1.x, missing from its d.ts)
    (consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
    let lastError = 0;
    const loop = new Promise<void>((stopped) => {
      const next = (): void => {
        if (this.state === 'closed') return stopped();
        try {
          consumer.consume(1000, (err) => {
            if (!err) return next();
            if (this.state === 'closed') return stopped();
            if (Date.now() - lastError > 10_000) {
              lastError = Date.now();
              this.logger.warn({ err: String(err), cursor, topic: this.topic }, 'reading the idempotency topic failed; retrying');
            }
            setTimeout(next, 200);
          });
        } catch (err) {
          this.logger.error({ err: String(err), cursor, topic: this.topic }, 'the idempotency consumer stopped');
          stopped();
        }
      };
      next();
    });
    this.loops.push(loop);
  }

  /** Creates the topic if it is missing; true if this call created it. */
  private async ensureTopic(ctx: StartContext, brokers: number): Promise<boolean> {
    const admin = this.admin!;
    const replication = Math.max(1, Math.min(3, brokers));
    const created = await retryStep(ctx, `creating the idempotency topic ${this.topic}`, async (timeoutMs) => {
      if (this.state === 'closed') throw closedWhileStarting();
      const topics = await new Promise<string[]>((resolve, reject) =>
        admin.listTopics({ timeout: timeoutMs }, (err, list) => (err ? reject(err) : resolve(list))),
      );
      if (topics.includes(this.topic)) return false;
      // A timed-out create may have created the topic: the next attempt lists it first.
      await new Promise<void>((resolve, reject) =>
        admin.createTopic(
          {
            topic: this.topic,
            num_partitions: this.createPartitions,
            replication_factor: replication,
            config: topicRetentionConfig(this.retentionMs),
          },
          timeoutMs,
          (err) => (err && err.code !== 36 /* TOPIC_ALREADY_EXISTS: another instance won */ ? reject(err) : resolve()),
        ),
      );
      return true;
    });
    if (created) {
      this.logger.info(
        { topic: this.topic, partitions: this.createPartitions, replication, config: topicRetentionConfig(this.retentionMs) },
        'created the idempotency topic',
      );
    }
    return created;
  }

  /**
   * Warns when an existing topic has no time-based retention (created by a txgate without it, or
   * by hand): the broker then keeps every key forever. This client cannot read or alter topic
   * configs (no DescribeConfigs/AlterConfigs in @confluentinc/kafka-javascript 1.10), so it asks
   * the broker to delete the records before offset 0, which deletes nothing and is refused with
   * POLICY_VIOLATION exactly when cleanup.policy lacks "delete". Changing the topic is left to the
   * operator: the warning names the command. (It cannot see a retention.ms too short for ours.)
   */
  private async checkTopicRetention(ctx: StartContext): Promise<void> {
    const admin = this.admin!;
    let code: number | undefined;
    try {
      // Only advice: errors of a topic still spreading are retried, but for 30 s at most.
      code = await retryStep(
        { ...ctx, deadline: Math.min(ctx.deadline, Date.now() + 30_000) },
        `checking the retention of the idempotency topic ${this.topic}`,
        async (timeoutMs) => {
          if (this.state === 'closed') throw closedWhileStarting();
          try {
            const [result] = await new Promise<DeleteRecordsResult[]>((resolve, reject) =>
              admin.deleteRecords([{ topic: this.topic, partition: 0, offset: 0 }], { timeout: timeoutMs }, (err, res) =>
                err ? reject(err) : resolve(res),
              ),
            );
            if (result?.error) throw result.error;
            return 0;
          } catch (err) {
            // The answer sought, not a failure.
            if ((err as Partial<LibrdKafkaError>).code === 44 /* POLICY_VIOLATION */) return 44;
            throw err;
          }
        },
        { beforeRetry: () => refreshMetadata(admin) },
      );
    } catch (err) {
      if (ctx.signal?.aborted || err instanceof PoolClosedError) throw err;
      const last = (err as { lastError?: Partial<LibrdKafkaError> }).lastError;
      code = last?.code ?? -1;
    }
    if (code === undefined || code === 0) return;
    const config = topicRetentionConfig(this.retentionMs);
    const command =
      `kafka-configs.sh --bootstrap-server ${String(this.kafka['bootstrap.servers'] ?? '<brokers>')} --alter --entity-type topics ` +
      `--entity-name ${this.topic} --add-config 'cleanup.policy=[compact,delete],retention.ms=${config['retention.ms']},segment.ms=${config['segment.ms']}'`;
    if (code === 44 /* POLICY_VIOLATION */) {
      this.logger.warn(
        { topic: this.topic, retentionMs: this.retentionMs, command },
        `the idempotency topic ${this.topic} has no time-based retention (cleanup.policy without "delete"), so Kafka keeps ` +
          `every idempotency key forever and each start reads them all; this gateway forgets keys after ${this.retentionMs} ms ` +
          `regardless. To let the broker delete them too, run (with --command-config for TLS/SASL): ${command}`,
      );
    } else if (code === 29 /* TOPIC_AUTHORIZATION_FAILED */) {
      // The probe is a DeleteRecords: without the DELETE permission it cannot look. Not needed otherwise.
      this.logger.warn(
        { topic: this.topic, code, command },
        `could not check the retention of the idempotency topic ${this.topic}: this gateway's principal lacks the DELETE ` +
          `permission on it (only this check uses it; the gateway runs without it). Make sure the topic has ` +
          `cleanup.policy=compact,delete and retention.ms of at least ${config['retention.ms']}, e.g.: ${command}`,
      );
    } else {
      this.logger.info(
        { topic: this.topic, code, command },
        `could not check the retention of the idempotency topic ${this.topic}; it should have cleanup.policy=compact,delete ` +
          `and retention.ms of at least ${config['retention.ms']}`,
      );
    }
  }

  /** The topic's partition count, once its metadata has propagated and every partition has a leader. */
  private async partitionCount(ctx: StartContext, consumer: RdKafkaConsumer): Promise<number> {
    return retryStep(
      ctx,
      `waiting for the partition leaders of the idempotency topic ${this.topic}`,
      async (timeoutMs) => {
        if (this.state === 'closed') throw closedWhileStarting();
        const md = await new Promise<Metadata>((resolve, reject) =>
          consumer.getMetadata({ topic: this.topic, timeout: Math.min(timeoutMs, 5_000) }, (err, data) => (err ? reject(err) : resolve(data))),
        );
        const t = md.topics.find((x) => x.name === this.topic);
        const n = t?.partitions.length ?? 0;
        if (n > 0 && t!.partitions.every((p) => p.leader >= 0)) return n;
        throw new IdempotencyUnavailableError(
          n === 0 ? `the broker does not know the idempotency topic ${this.topic} yet` : `the idempotency topic ${this.topic} has partitions without a leader`,
        );
      },
      { initialBackoffMs: 200, maxBackoffMs: 1_000 },
    );
  }

  /**
   * The partitions' end offsets. librdkafka's ListOffsets looks the leaders up in the admin
   * client's metadata cache; when the broker that answered its first lookup had not heard of a
   * topic created a moment ago, the topic is cached as unknown, and every later ListOffsets fails
   * at once with -156 _NOENT ("Local: No such entry") without asking a broker again (measured on 3
   * brokers: about 1 fresh topic in 15, still failing 150 s later). So each retry first refreshes
   * the client's metadata with a full metadata request, whose answer replaces that entry once the
   * answering broker knows the topic.
   */
  private async listOffsets(ctx: StartContext, partitions: number, isolation: 'committed' | 'uncommitted'): Promise<number[]> {
    const admin = this.admin!;
    return retryStep(
      ctx,
      `listing the end offsets of the idempotency topic ${this.topic}`,
      async (timeoutMs) => {
        if (this.state === 'closed') throw closedWhileStarting();
        const result = await new Promise<Array<{ partition: number; offset: number; error?: unknown }>>((resolve, reject) =>
          admin.listOffsets(
            Array.from({ length: partitions }, (_, partition) => ({ topic: this.topic, partition, offset: OffsetSpec.LATEST })),
            {
              timeout: timeoutMs,
              isolationLevel: isolation === 'committed' ? IsolationLevel.READ_COMMITTED : IsolationLevel.READ_UNCOMMITTED,
            },
            (err, res) => (err ? reject(err) : resolve(res)),
          ),
        );
        // A partition's error (its leader has not loaded it yet) is retried, never read as an offset.
        const failed = result.find((r) => r.error);
        if (failed) throw failed.error;
        const offsets = Array.from({ length: partitions }, () => 0);
        for (const r of result) offsets[r.partition] = Number(r.offset);
        return offsets;
      },
      { beforeRetry: () => refreshMetadata(admin) },
    );
  }
}

function keyOf(m: Message): string | undefined {
  const k: unknown = m.key;
  if (k === null || k === undefined) return undefined;
  return Buffer.isBuffer(k) ? k.toString('utf8') : String(k);
}

/**
 * Connects a new consumer per attempt (a client whose connect failed is not reused) until the
 * start-up deadline. One that connects after close() ran is disconnected here: close() could not
 * see it.
 */
async function connect(
  ctx: StartContext,
  step: string,
  make: () => RdKafkaConsumer,
  closed: () => boolean,
): Promise<{ consumer: RdKafkaConsumer; metadata: Metadata }> {
  return retryStep(ctx, step, async (timeoutMs) => {
    if (closed()) throw closedWhileStarting();
    const consumer = make();
    const metadata = await new Promise<Metadata>((resolve, reject) =>
      consumer.connect({ timeout: timeoutMs }, (err, md) => (err ? reject(err) : resolve(md))),
    );
    if (closed()) {
      await disconnect(consumer);
      throw closedWhileStarting();
    }
    return { consumer, metadata };
  });
}

function closedWhileStarting(): PoolClosedError {
  return new PoolClosedError('the idempotency store was closed while starting');
}

/** A full metadata request: its answer replaces what the client cached about every topic. */
function refreshMetadata(admin: IAdminClient): Promise<void> {
  return new Promise<void>((resolve, reject) => admin.listTopics({ timeout: 5_000 }, (err) => (err ? reject(err) : resolve())));
}

function disconnect(consumer: RdKafkaConsumer | undefined): Promise<void> {
  if (!consumer || !consumer.isConnected()) return Promise.resolve();
  return new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
}
