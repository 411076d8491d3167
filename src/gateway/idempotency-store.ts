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
 */
import kafka from '@confluentinc/kafka-javascript';
import type {
  IAdminClient,
  KafkaConsumer as RdKafkaConsumer,
  LibrdKafkaError,
  Message,
  Metadata,
} from '@confluentinc/kafka-javascript';
import { AcquireAbortedError, PoolClosedError } from '../errors.js';
import type { OutgoingRecord, RecordMetadata } from '../pool/producer-port.js';
import type { Transaction } from '../pool/types.js';
import { ParticipantRejection, type BatchParticipant } from './group-commit.js';
import {
  IdempotencyKeyInFlightError,
  IdempotencyKeyMismatchError,
  IdempotencyUnavailableError,
} from './service-errors.js';

const { AdminClient, KafkaConsumer, IsolationLevel, OffsetSpec } = kafka;

// ---------------------------------------------------------------------------------------------
// Partitioning: Kafka's murmur2 (the Java client's default partitioner, and librdkafka's
// `murmur2`), so the partition of a key is known before writing and agrees with other tools.

export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  switch (length & 3) {
    case 3:
      h ^= data[whole + 2]! << 16;
    // falls through
    case 2:
      h ^= data[whole + 1]! << 8;
    // falls through
    case 1:
      h ^= data[whole]!;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

export function partitionForKey(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions;
}

// ---------------------------------------------------------------------------------------------
// The record format.

export interface CommittedOutcome {
  fingerprint: string;
  records: RecordMetadata[];
  committedAt: string;
}

interface PendingClaim {
  pending: true;
  fingerprint: string;
  claimedAt: string;
}

export function encodeOutcome(outcome: CommittedOutcome): Buffer {
  return Buffer.from(JSON.stringify(outcome));
}

/** undefined for claims and for anything that is not ours. */
export function decodeOutcome(value: Buffer | null | undefined): CommittedOutcome | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value.toString('utf8')) as Partial<CommittedOutcome & PendingClaim>;
    if (v.pending || typeof v.fingerprint !== 'string' || !Array.isArray(v.records)) return undefined;
    const records = v.records.filter(
      (r): r is RecordMetadata => !!r && typeof r.topic === 'string' && typeof r.partition === 'number' && typeof r.offset === 'string',
    );
    return { fingerprint: v.fingerprint, records, committedAt: String(v.committedAt ?? '') };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The in-memory view: what the two consumers have read, and waits on their positions.

export interface ViewEntry extends CommittedOutcome {
  /** Offset of the outcome record in the idempotency topic. */
  offset: number;
}

type Cursor = 'committed' | 'uncommitted';

interface Waiter {
  target: number;
  resolve(): void;
  reject(err: Error): void;
}

interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** What the IdempotencyUnavailableError says when the wait times out. */
  what?: string;
}

export class IdempotencyView {
  private readonly outcomes = new Map<string, ViewEntry>();
  private readonly positions: Record<Cursor, number[]>;
  private readonly waiters: Record<Cursor, Waiter[][]>;
  /** Records read uncommitted that the committed cursor has not passed yet, per partition and key. */
  private readonly unresolvedByKey = new Map<string, number[]>();
  /** The same, in offset order per partition, so passing them is cheap. */
  private readonly unresolvedQueue: Array<Array<{ offset: number; key: string }>>;
  private readonly unresolvedHead: number[];
  /** Offsets of our own records whose transaction we know was aborted. */
  private readonly knownAborted: Array<Set<number>>;

  constructor(
    readonly partitions: number,
    start: { committed?: number[]; uncommitted?: number[] } = {},
  ) {
    const zeros = (): number[] => Array.from({ length: partitions }, () => 0);
    this.positions = { committed: start.committed?.slice() ?? zeros(), uncommitted: start.uncommitted?.slice() ?? zeros() };
    this.waiters = { committed: Array.from({ length: partitions }, () => []), uncommitted: Array.from({ length: partitions }, () => []) };
    this.unresolvedQueue = Array.from({ length: partitions }, () => []);
    this.unresolvedHead = zeros();
    this.knownAborted = Array.from({ length: partitions }, () => new Set<number>());
  }

  get size(): number {
    return this.outcomes.size;
  }

  position(cursor: Cursor, partition: number): number {
    return this.positions[cursor][partition] ?? 0;
  }

  lookup(key: string): ViewEntry | undefined {
    return this.outcomes.get(key);
  }

  /** Offsets of records for this key that were read uncommitted and whose transaction is not known to have ended. */
  unresolved(partition: number, key: string): readonly number[] {
    return this.unresolvedByKey.get(unresolvedId(partition, key)) ?? [];
  }

  /** A record read by the read_committed consumer. */
  applyCommitted(partition: number, offset: number, key: string | undefined, value: Buffer | null | undefined): void {
    if (key !== undefined) {
      if (value === null || value === undefined) {
        const current = this.outcomes.get(key);
        if (current && current.offset < offset) this.outcomes.delete(key);
      } else {
        const outcome = decodeOutcome(value);
        if (outcome) this.remember(key, outcome, offset);
      }
    }
    this.advance('committed', partition, offset + 1);
  }

  /** A record read by the read_uncommitted consumer. */
  applyUncommitted(partition: number, offset: number, key: string | undefined): void {
    if (key !== undefined && offset >= this.position('committed', partition) && !this.knownAborted[partition]!.has(offset)) {
      this.unresolvedQueue[partition]!.push({ offset, key });
      const id = unresolvedId(partition, key);
      const offsets = this.unresolvedByKey.get(id);
      if (offsets) offsets.push(offset);
      else this.unresolvedByKey.set(id, [offset]);
    }
    this.advance('uncommitted', partition, offset + 1);
  }

  remember(key: string, outcome: CommittedOutcome, offset: number): void {
    const current = this.outcomes.get(key);
    if (current && current.offset > offset) return;
    this.outcomes.set(key, { ...outcome, offset });
  }

  /** Our transaction holding these records was aborted: they will never become visible. */
  markAborted(partition: number, offsets: Iterable<number>): void {
    const committedAt = this.position('committed', partition);
    const aborted = this.knownAborted[partition]!;
    const fresh = new Set<number>();
    for (const offset of offsets) {
      if (offset < committedAt || aborted.has(offset)) continue;
      aborted.add(offset);
      fresh.add(offset);
    }
    if (fresh.size === 0) return;
    const q = this.unresolvedQueue[partition]!;
    for (let i = this.unresolvedHead[partition]!; i < q.length; i++) {
      const { offset, key } = q[i]!;
      if (fresh.has(offset)) this.dropUnresolved(partition, key, offset);
    }
  }

  /**
   * After our claim at `claimOffset`: did another writer claim or commit this key since the
   * decision at `horizon`? `own` are offsets this request wrote itself (in earlier attempts too).
   */
  conflicts(partition: number, key: string, horizon: number, claimOffset: number, own: ReadonlySet<number>): boolean {
    const committed = this.outcomes.get(key);
    if (committed && committed.offset >= horizon && !own.has(committed.offset)) return true;
    return this.unresolved(partition, key).some((o) => o >= horizon && o < claimOffset && !own.has(o));
  }

  /** Moves a cursor forward (never back) and wakes whoever waits for it. */
  advance(cursor: Cursor, partition: number, position: number): void {
    const positions = this.positions[cursor];
    if (partition >= positions.length || position <= positions[partition]!) return;
    positions[partition] = position;
    if (cursor === 'committed') this.passResolved(partition, position);
    const waiting = this.waiters[cursor][partition]!;
    if (waiting.length === 0) return;
    const still: Waiter[] = [];
    for (const w of waiting) {
      if (position >= w.target) w.resolve();
      else still.push(w);
    }
    this.waiters[cursor][partition] = still;
  }

  /** Resolves once the cursor reaches `target`; IdempotencyUnavailableError at the deadline. */
  waitFor(cursor: Cursor, partition: number, target: number, opts: WaitOptions): Promise<void> {
    if (this.position(cursor, partition) >= target) return Promise.resolve();
    if (opts.signal?.aborted) return Promise.reject(new AcquireAbortedError(opts.signal.reason));
    return new Promise<void>((resolve, reject) => {
      const list = this.waiters[cursor][partition]!;
      const done = (): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const remove = (): void => {
        const ws = this.waiters[cursor][partition]!;
        const at = ws.indexOf(waiter);
        if (at >= 0) ws.splice(at, 1);
      };
      const waiter: Waiter = {
        target,
        resolve: () => {
          done();
          resolve();
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      const onAbort = (): void => {
        done();
        remove();
        reject(new AcquireAbortedError(opts.signal?.reason));
      };
      const timer = setTimeout(() => {
        done();
        remove();
        reject(
          new IdempotencyUnavailableError(
            `${opts.what ?? 'the idempotency topic'} did not catch up within ${opts.timeoutMs} ms ` +
              `(partition ${partition}: ${cursor} position ${this.position(cursor, partition)}, needed ${target})`,
          ),
        );
      }, Math.max(0, opts.timeoutMs));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      list.push(waiter);
    });
  }

  /** Fails every waiter (the store is closing). */
  failWaiters(err: Error): void {
    for (const cursor of ['committed', 'uncommitted'] as const) {
      for (let p = 0; p < this.partitions; p++) {
        const ws = this.waiters[cursor][p]!;
        this.waiters[cursor][p] = [];
        for (const w of ws) w.reject(err);
      }
    }
  }

  private dropUnresolved(partition: number, key: string, offset: number): void {
    const id = unresolvedId(partition, key);
    const list = this.unresolvedByKey.get(id);
    if (!list) return;
    const kept = list.filter((o) => o !== offset);
    if (kept.length === 0) this.unresolvedByKey.delete(id);
    else this.unresolvedByKey.set(id, kept);
  }

  /** The committed cursor passed these: their transaction ended, and the view holds what it committed. */
  private passResolved(partition: number, position: number): void {
    const q = this.unresolvedQueue[partition]!;
    let head = this.unresolvedHead[partition]!;
    while (head < q.length && q[head]!.offset < position) {
      const { offset, key } = q[head]!;
      this.dropUnresolved(partition, key, offset);
      head++;
    }
    if (head > 1024 && head * 2 > q.length) {
      q.splice(0, head);
      head = 0;
    }
    this.unresolvedHead[partition] = head;
    const aborted = this.knownAborted[partition]!;
    if (aborted.size > 0) for (const o of aborted) if (o < position) aborted.delete(o);
  }
}

function unresolvedId(partition: number, key: string): string {
  return `${partition}\u0000${key}`;
}

// ---------------------------------------------------------------------------------------------
// One keyed request's part in a transaction.

/** Our claim lost to another writer of the same key: decide the key again. */
export class ClaimConflictError extends Error {
  constructor(readonly key: string) {
    super(`another writer claimed idempotency key ${JSON.stringify(key)} concurrently`);
    this.name = 'ClaimConflictError';
  }
}

export interface KeyClaimContext {
  topic: string;
  partition: number;
  view: IdempotencyView;
  /** How long to wait, inside the transaction, for the read_uncommitted consumer to reach our claim. */
  verifyTimeoutMs: number;
  now(): Date;
}

/**
 * The right to run one keyed request (this instance holds the key in flight until release()).
 * As a batch participant it writes the claim first, verifies nobody else claimed the key since
 * the decision, and writes the outcome after the data.
 */
export class KeyClaim implements BatchParticipant {
  /** Offsets this request wrote to the idempotency topic, in every attempt. */
  readonly own = new Set<number>();
  private attemptOffsets: number[] = [];
  private outcome: CommittedOutcome | undefined;
  private outcomeOffset: number | undefined;
  private released = false;

  constructor(
    readonly key: string,
    readonly fingerprint: string,
    /** The read_uncommitted position up to which the key was decided unknown. */
    public horizon: number,
    private readonly ctx: KeyClaimContext,
    private readonly onRelease: (claim: KeyClaim) => void,
  ) {}

  get partition(): number {
    return this.ctx.partition;
  }

  async begin(tx: Transaction): Promise<void> {
    this.attemptOffsets = [];
    this.outcome = undefined;
    const claim: PendingClaim = { pending: true, fingerprint: this.fingerprint, claimedAt: this.ctx.now().toISOString() };
    // Sent before any await: the transaction's first record on this partition.
    const sent = tx.send(this.record(Buffer.from(JSON.stringify(claim))));
    const offset = this.noteOffset((await sent)[0]);
    try {
      await this.ctx.view.waitFor('uncommitted', this.partition, offset + 1, {
        timeoutMs: this.ctx.verifyTimeoutMs,
        what: 'the idempotency topic (verifying the key claim)',
      });
    } catch (err) {
      throw new ParticipantRejection(err);
    }
    if (this.ctx.view.conflicts(this.partition, this.key, this.horizon, offset, this.own)) {
      throw new ParticipantRejection(new ClaimConflictError(this.key));
    }
  }

  async finish(tx: Transaction, records: RecordMetadata[]): Promise<void> {
    const outcome: CommittedOutcome = { fingerprint: this.fingerprint, records, committedAt: this.ctx.now().toISOString() };
    const [md] = await tx.send(this.record(encodeOutcome(outcome)));
    this.outcomeOffset = this.noteOffset(md);
    this.outcome = outcome;
  }

  committed(): void {
    if (this.outcome && this.outcomeOffset !== undefined) this.ctx.view.remember(this.key, this.outcome, this.outcomeOffset);
  }

  aborted(): void {
    this.ctx.view.markAborted(this.partition, this.attemptOffsets);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
  }

  private record(value: Buffer): OutgoingRecord {
    return { topic: this.ctx.topic, partition: this.partition, key: Buffer.from(this.key, 'utf8'), value };
  }

  private noteOffset(md: RecordMetadata | undefined): number {
    if (!md) throw new Error('no metadata for the idempotency record');
    const offset = Number(md.offset);
    this.own.add(offset);
    this.attemptOffsets.push(offset);
    return offset;
  }
}

// ---------------------------------------------------------------------------------------------
// The store: Kafka plumbing and the decision for a key.

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
  logger?: Logger | undefined;
}

export type KeyDecision =
  | { kind: 'replay'; outcome: CommittedOutcome }
  | { kind: 'run'; claim: KeyClaim };

const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export class IdempotencyStore {
  readonly topic: string;
  private readonly kafka: KafkaProps;
  private readonly createPartitions: number;
  private readonly catchUpTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly logger: Logger;
  private readonly inFlight = new Map<string, KeyClaim | null>();
  private admin: IAdminClient | undefined;
  private committedConsumer: RdKafkaConsumer | undefined;
  private uncommittedConsumer: RdKafkaConsumer | undefined;
  private view: IdempotencyView | undefined;
  private state: 'new' | 'starting' | 'started' | 'closed' = 'new';
  private readonly loops: Promise<void>[] = [];

  constructor(opts: IdempotencyStoreOptions) {
    this.kafka = opts.kafka;
    this.topic = opts.topic ?? 'txgate.idempotency';
    this.createPartitions = opts.partitions ?? 3;
    this.catchUpTimeoutMs = opts.catchUpTimeoutMs ?? 5_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    this.logger = opts.logger ?? silentLogger;
  }

  get keys(): number {
    return this.view?.size ?? 0;
  }

  get inFlightKeys(): number {
    return this.inFlight.size;
  }

  /** Ensures the topic and loads it to its end (read_committed), then keeps tailing it. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`the idempotency store cannot start: it is ${this.state}`);
    this.state = 'starting';
    try {
      this.admin = AdminClient.create({ ...this.kafka, 'client.id': 'txgate-idempotency-admin' } as never);
      const committed = this.newConsumer('read_committed');
      this.committedConsumer = committed;
      const metadata = await connect(committed, this.startTimeoutMs);
      await this.ensureTopic(metadata.brokers.length);
      const partitions = await this.partitionCount(committed);
      const stable = await this.listOffsets(partitions, 'committed');
      const view = new IdempotencyView(partitions, { uncommitted: stable });
      this.view = view;

      const uncommitted = this.newConsumer('read_uncommitted');
      this.uncommittedConsumer = uncommitted;
      await connect(uncommitted, this.startTimeoutMs);
      uncommitted.assign(stable.map((offset, partition) => ({ topic: this.topic, partition, offset })));
      this.tail(uncommitted, 'uncommitted', (m) => view.applyUncommitted(m.partition, m.offset, keyOf(m)));

      committed.assign(stable.map((_, partition) => ({ topic: this.topic, partition, offset: -2 /* beginning */ })));
      this.tail(committed, 'committed', (m) => view.applyCommitted(m.partition, m.offset, keyOf(m), m.value));

      await Promise.all(
        stable.map((target, partition) =>
          view.waitFor('committed', partition, target, { timeoutMs: this.startTimeoutMs, what: `loading ${this.topic}` }),
        ),
      );
      this.state = 'started';
      this.logger.info({ topic: this.topic, partitions, keys: view.size }, 'idempotency keys loaded');
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
    this.view?.failWaiters(new PoolClosedError('the idempotency store is closed'));
    // A consume call in progress returns within its timeout; disconnecting under it is unsafe.
    await Promise.all(this.loops);
    await Promise.all([disconnect(this.committedConsumer), disconnect(this.uncommittedConsumer)]);
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
      const known = view.lookup(key);
      if (known) {
        if (known.fingerprint !== fingerprint) throw new IdempotencyKeyMismatchError(key);
        return known;
      }
      const unresolved = view.unresolved(partition, key);
      if (unresolved.length === 0) return view.position('uncommitted', partition);
      // Someone wrote this key and its transaction has not ended (another instance is working
      // on it, or a crashed one left it open): wait for its outcome.
      await view.waitFor('committed', partition, Math.max(...unresolved) + 1, {
        timeoutMs: deadline - Date.now(),
        signal,
        what: 'another transaction holding this idempotency key',
      });
    }
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

  private async ensureTopic(brokers: number): Promise<void> {
    const admin = this.admin!;
    const topics = await new Promise<string[]>((resolve, reject) =>
      admin.listTopics({ timeout: this.startTimeoutMs }, (err, list) => (err ? reject(err) : resolve(list))),
    );
    if (topics.includes(this.topic)) return;
    const replication = Math.max(1, Math.min(3, brokers));
    await new Promise<void>((resolve, reject) =>
      admin.createTopic(
        {
          topic: this.topic,
          num_partitions: this.createPartitions,
          replication_factor: replication,
          config: { 'cleanup.policy': 'compact' },
        },
        this.startTimeoutMs,
        (err) => (err && err.code !== 36 /* TOPIC_ALREADY_EXISTS: another instance won */ ? reject(err) : resolve()),
      ),
    );
    this.logger.info({ topic: this.topic, partitions: this.createPartitions, replication }, 'created the idempotency topic');
  }

  /** The topic's partition count, once its metadata has propagated. */
  private async partitionCount(consumer: RdKafkaConsumer): Promise<number> {
    const deadline = Date.now() + this.startTimeoutMs;
    for (;;) {
      const md = await new Promise<Metadata>((resolve, reject) =>
        consumer.getMetadata({ topic: this.topic, timeout: 5_000 }, (err, data) => (err ? reject(err) : resolve(data))),
      );
      const t = md.topics.find((x) => x.name === this.topic);
      const n = t?.partitions.length ?? 0;
      if (n > 0 && t!.partitions.every((p) => p.leader >= 0)) return n;
      if (Date.now() > deadline) throw new IdempotencyUnavailableError(`the idempotency topic ${this.topic} has no partitions with a leader`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async listOffsets(partitions: number, isolation: 'committed' | 'uncommitted'): Promise<number[]> {
    const admin = this.admin!;
    const result = await new Promise<Array<{ partition: number; offset: number }>>((resolve, reject) =>
      admin.listOffsets(
        Array.from({ length: partitions }, (_, partition) => ({ topic: this.topic, partition, offset: OffsetSpec.LATEST })),
        {
          timeout: this.startTimeoutMs,
          isolationLevel: isolation === 'committed' ? IsolationLevel.READ_COMMITTED : IsolationLevel.READ_UNCOMMITTED,
        },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
    const offsets = Array.from({ length: partitions }, () => 0);
    for (const r of result) offsets[r.partition] = Number(r.offset);
    return offsets;
  }
}

function keyOf(m: Message): string | undefined {
  const k: unknown = m.key;
  if (k === null || k === undefined) return undefined;
  return Buffer.isBuffer(k) ? k.toString('utf8') : String(k);
}

function connect(consumer: RdKafkaConsumer, timeoutMs: number): Promise<Metadata> {
  return new Promise<Metadata>((resolve, reject) =>
    consumer.connect({ timeout: timeoutMs }, (err, md) => (err ? reject(err) : resolve(md))),
  );
}

function disconnect(consumer: RdKafkaConsumer | undefined): Promise<void> {
  if (!consumer || !consumer.isConnected()) return Promise.resolve();
  return new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
}
