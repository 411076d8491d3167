/**
 * A deterministic, scriptable stand-in for Kafka behind the pool's producer port.
 *
 * `FakeCluster` plays the transaction coordinator and the partitions; `cluster.factory` is the
 * `ProducerFactory` handed to the pool. It keeps what the unit tests need to judge the pool:
 * every producer made per transactional id, every call in order, committed / aborted / still
 * pending records per topic, and `violations` — uses of the port that real Kafka would punish
 * (a second begin while a transaction is open, a send outside a transaction, begin/commit/abort
 * overlapping another call on the same producer, any call after close). A correct pool leaves
 * `violations` empty.
 *
 * Kafka semantics it imitates (see /work/shared/notes/kafka-facts.md):
 * - one open transaction per producer; begin while open fails like librdkafka's -172 _STATE;
 * - init on a transactional id bumps its epoch, aborts whatever the id had open, and fences every
 *   older producer of the id: their next broker call fails with PRODUCER_FENCED (fatal), and they
 *   stay failed. begin is local in librdkafka, so it does not notice fencing;
 * - a retriable commit failure (e.g. _TIMED_OUT) leaves the commit in progress: commit may be
 *   called again, while abort fails with -173 _CONFLICT; with `commitApplied` the broker did commit
 *   and the retried commit just reports success;
 * - an abortable failure (txnRequiresAbort), or a failed delivery, forbids commit until abort;
 * - a fatal failure leaves the producer fatal: every later call but close fails with it. Its open
 *   transaction stays pending until the id is initialised again (which aborts it);
 * - abort purges deliveries still in flight (they fail with -152 and never block the next
 *   transaction), as librdkafka's abort_transaction does; a retriable sendOffsets may be repeated.
 *
 * Interleavings are controlled without sleeps: `hold(kind)` parks matching calls until the test
 * releases (or fails) them, and `delay` lets a test route every call through its own scheduler
 * (for instance fast-check's `fc.scheduler()`).
 */
import {
  KafkaClientError,
  type OutgoingRecord,
  type ProducerFactory,
  type RecordMetadata,
  type TopicPartitionOffset,
  type TransactionalProducer,
} from '../../src/pool/producer-port.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import type { PoolOptions } from '../../src/pool/types.js';

export type CallKind = 'init' | 'begin' | 'send' | 'sendOffsets' | 'commit' | 'abort' | 'close';

/** Calls that must not overlap any other call on the same producer (abort may overlap sends: it purges them). */
const CONTROL_CALLS: ReadonlySet<CallKind> = new Set(['init', 'begin', 'commit', 'abort']);

// --- errors, shaped like the adapter makes them from librdkafka's -------------------------------

function kafkaError(message: string, code: number, codeName: string, flags: Partial<Pick<KafkaClientError, 'fatal' | 'retriable' | 'txnRequiresAbort'>> = {}): KafkaClientError {
  return new KafkaClientError(message, {
    code,
    codeName,
    fatal: flags.fatal ?? false,
    retriable: flags.retriable ?? false,
    txnRequiresAbort: flags.txnRequiresAbort ?? false,
  });
}

export const kafkaErrors = {
  /** librdkafka -185: the broker did not answer in time (commit: call commit again). */
  timedOut: (what = 'operation') => kafkaError(`${what} timed out`, -185, '_TIMED_OUT', { retriable: true }),
  /** Broker 51: the coordinator is still completing the previous transaction of this id. */
  concurrentTransactions: () =>
    kafkaError('CONCURRENT_TRANSACTIONS: the coordinator is completing a previous transaction', 51, 'CONCURRENT_TRANSACTIONS', { retriable: true }),
  /** Broker 120 (KIP-890): the transaction must be aborted; the producer stays usable. */
  abortable: () => kafkaError('TRANSACTION_ABORTABLE: the transaction must be aborted', 120, 'TRANSACTION_ABORTABLE', { txnRequiresAbort: true }),
  /** Broker 90: a newer producer initialised this transactional id. */
  fenced: () => kafkaError('PRODUCER_FENCED: a newer producer with the same transactional.id exists', 90, 'PRODUCER_FENCED', { fatal: true }),
  /** Broker 53: a non-recoverable error (configuration / authorization). */
  fatal: () =>
    kafkaError('TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 53, 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', { fatal: true }),
  /** Broker 10: one record was refused; inside a transaction this makes the transaction abortable. */
  msgSizeTooLarge: () => kafkaError('MSG_SIZE_TOO_LARGE: the record is larger than the broker accepts', 10, 'MSG_SIZE_TOO_LARGE'),
  /** librdkafka -172: the call is not valid in the producer's current transactional state. */
  state: (why: string) => kafkaError(why, -172, '_STATE'),
  /** librdkafka -173: abort while a timed-out commit is still in progress. */
  conflict: () => kafkaError('Conflicting commit_transaction API call is already in progress', -173, '_CONFLICT'),
  /** librdkafka -152: an outstanding delivery purged by abort. */
  purged: () => kafkaError('Purged in queue', -152, '_PURGE_QUEUE'),
  /** librdkafka -197: the producer was closed while the call was in flight. */
  destroyed: () => kafkaError('producer is closed', -197, '_DESTROY'),
  /** librdkafka -187: all brokers down (retriable). */
  allBrokersDown: () => kafkaError('all brokers are down', -187, '_ALL_BROKERS_DOWN', { retriable: true }),
};

// --- small async helpers for tests ----------------------------------------------------------

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
  settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const d = { settled: false } as Deferred<T>;
  d.promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  d.resolve = (value) => {
    d.settled = true;
    resolve(value);
  };
  d.reject = (reason) => {
    d.settled = true;
    reject(reason);
  };
  return d;
}

/** Lets every already-queued callback, microtask and immediate run (no timers). */
export async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Tracks whether a promise has settled, for asserting that something has NOT happened yet. */
export function track<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean; result: () => PromiseSettledResult<T> | undefined } {
  let result: PromiseSettledResult<T> | undefined;
  promise.then(
    (value) => (result = { status: 'fulfilled', value }),
    (reason) => (result = { status: 'rejected', reason }),
  );
  return { promise, settled: () => result !== undefined, result: () => result };
}

// --- the cluster's records --------------------------------------------------------------------

export interface CallRecord {
  seq: number;
  kind: CallKind;
  transactionalId: string;
  /** 1 for the first producer made for this id, 2 for its replacement, ... */
  producer: number;
  timeoutMs?: number | undefined;
  record?: OutgoingRecord | undefined;
  startedAt: number;
  status: 'pending' | 'ok' | 'error';
  error?: unknown;
}

export type RecordState = 'pending' | 'committed' | 'aborted';

export interface StoredRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  transactionalId: string;
  producer: number;
  txn: number;
  state: RecordState;
}

export interface FakeTransaction {
  serial: number;
  transactionalId: string;
  producer: number;
  state: 'open' | 'committed' | 'aborted';
  records: StoredRecord[];
  offsets: TopicPartitionOffset[][];
  /** Set by an abortable failure: commit is refused until abort. */
  mustAbort?: KafkaClientError | undefined;
  /** A commit failed retriably: it may be retried; abort conflicts with it. */
  commitInProgress: boolean;
  /** The broker committed although the client saw an error; a retried commit reports success. */
  committedAtBroker: boolean;
}

export interface CallFilter {
  /** Only calls for this transactional id. */
  id?: string | undefined;
  /** Only calls of the n-th producer made for the id (1 = the original). */
  producer?: number | undefined;
  where?: ((call: CallRecord) => boolean) | undefined;
}

interface Fault extends CallFilter {
  kind: CallKind;
  remaining: number;
  error: () => KafkaClientError;
  commitApplied: boolean;
}

function matches(filter: CallFilter, call: CallRecord): boolean {
  return (
    (filter.id === undefined || filter.id === call.transactionalId) &&
    (filter.producer === undefined || filter.producer === call.producer) &&
    (filter.where === undefined || filter.where(call))
  );
}

export interface HeldCall {
  readonly call: CallRecord;
  readonly released: boolean;
  /** Lets the call go on as Kafka would. */
  release(): void;
  /** Makes the call fail with `error` (with the same effect a scripted fault has). */
  fail(error: KafkaClientError, opts?: { commitApplied?: boolean }): void;
}

interface HoldOutcome {
  error?: KafkaClientError | undefined;
  commitApplied?: boolean | undefined;
}

/** Parks matching calls until the test lets them go. Created by `cluster.hold()`. */
export class Hold {
  readonly held: HeldCall[] = [];
  private readonly unclaimed: HeldCall[] = [];
  private readonly claimers: Array<(call: HeldCall) => void> = [];
  private active = true;
  private captured = 0;

  constructor(
    readonly kind: CallKind,
    private readonly filter: CallFilter,
    private readonly limit: number,
  ) {}

  /** Every call caught so far, released or not. */
  get count(): number {
    return this.captured;
  }

  /** Calls caught and not yet released. */
  get pending(): HeldCall[] {
    return this.held.filter((h) => !h.released);
  }

  /** @internal */
  tryCapture(call: CallRecord): Promise<HoldOutcome> | undefined {
    if (!this.active || call.kind !== this.kind || this.captured >= this.limit || !matches(this.filter, call)) return undefined;
    this.captured++;
    const gate = deferred<HoldOutcome>();
    let released = false;
    const held: HeldCall = {
      call,
      get released() {
        return released;
      },
      release: () => {
        if (released) return;
        released = true;
        gate.resolve({});
      },
      fail: (error, opts) => {
        if (released) return;
        released = true;
        gate.resolve({ error, commitApplied: opts?.commitApplied });
      },
    };
    this.held.push(held);
    const claimer = this.claimers.shift();
    if (claimer) claimer(held);
    else this.unclaimed.push(held);
    return gate.promise;
  }

  /** The next caught call not yet returned by next(), in arrival order; waits for it if needed. */
  next(timeoutMs = 2000): Promise<HeldCall> {
    const ready = this.unclaimed.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise<HeldCall>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.claimers.indexOf(claim);
        if (i >= 0) this.claimers.splice(i, 1);
        reject(new Error(`no ${this.kind} call arrived within ${timeoutMs} ms`));
      }, timeoutMs);
      const claim = (call: HeldCall) => {
        clearTimeout(timer);
        resolve(call);
      };
      this.claimers.push(claim);
    });
  }

  releaseAll(): void {
    for (const h of this.held) h.release();
  }

  /** Stops catching new calls and releases every held one. */
  stop(): void {
    this.active = false;
    this.releaseAll();
  }
}

export interface FakeClusterOptions {
  /** Partitions of every topic (records without partition or key go round-robin). */
  partitions?: number;
}

export class FakeCluster {
  readonly calls: CallRecord[] = [];
  readonly records: StoredRecord[] = [];
  readonly transactions: FakeTransaction[] = [];
  /** Port misuse a correct pool never commits. */
  readonly violations: string[] = [];
  /**
   * Every call is awaited through this hook (after holds) when set: lets a test scheduler decide
   * the order in which concurrent calls complete.
   */
  delay: ((call: CallRecord) => Promise<void> | void) | undefined;
  /** Decides a fault per call when set (after scripted faults): for random fault injection. */
  faultHook: ((call: CallRecord) => KafkaClientError | { error: KafkaClientError; commitApplied: boolean } | undefined) | undefined;

  private readonly byId = new Map<string, { epoch: number; producers: FakeProducer[] }>();
  private readonly faults: Fault[] = [];
  private readonly holds: Hold[] = [];
  private readonly offsets = new Map<string, bigint>();
  private readonly partitions: number;
  private roundRobin = 0;
  private seq = 0;
  private txnSerial = 0;
  private createFailures: Array<{ remaining: number; error: () => Error; filter: CallFilter }> = [];

  constructor(opts: FakeClusterOptions = {}) {
    this.partitions = opts.partitions ?? 3;
  }

  /** The ProducerFactory to give the pool. */
  readonly factory: ProducerFactory = (transactionalId: string) => {
    const entry = this.entry(transactionalId);
    const serial = entry.producers.length + 1;
    const failure = this.createFailures.find(
      (f) => f.remaining > 0 && (f.filter.id === undefined || f.filter.id === transactionalId),
    );
    if (failure) {
      failure.remaining--;
      throw failure.error();
    }
    const producer = new FakeProducer(this, transactionalId, serial);
    entry.producers.push(producer);
    return producer;
  };

  // --- scripting --------------------------------------------------------------------------------

  /**
   * The next `times` calls of `kind` (matching the filter) fail with `error` — a fresh error each
   * time when `error` is a function. For commit, `commitApplied` makes the broker commit anyway.
   */
  failNext(
    kind: CallKind,
    error: KafkaClientError | (() => KafkaClientError),
    opts: CallFilter & { times?: number; commitApplied?: boolean } = {},
  ): void {
    this.faults.push({
      kind,
      remaining: opts.times ?? 1,
      error: typeof error === 'function' ? error : () => error,
      commitApplied: opts.commitApplied ?? false,
      id: opts.id,
      producer: opts.producer,
      where: opts.where,
    });
  }

  /** Stops every scripted fault that has not fired yet. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** The factory throws (synchronously) for the next `times` producers made. */
  failNextCreate(error: () => Error, opts: { id?: string; times?: number } = {}): void {
    this.createFailures.push({ remaining: opts.times ?? 1, error, filter: { id: opts.id } });
  }

  /** Parks the next `times` (default: all) calls of `kind` matching the filter. */
  hold(kind: CallKind, opts: CallFilter & { times?: number } = {}): Hold {
    const hold = new Hold(kind, { id: opts.id, producer: opts.producer, where: opts.where }, opts.times ?? Infinity);
    this.holds.push(hold);
    return hold;
  }

  /** What another process initialising this id does: bump the epoch, abort its open transaction. */
  fence(transactionalId: string): void {
    const entry = this.entry(transactionalId);
    entry.epoch++;
    this.abortPendingOf(transactionalId);
  }

  // --- inspection -------------------------------------------------------------------------------

  /** Every transactional id the pool ever asked for, in first-creation order. */
  ids(): string[] {
    return [...this.byId.keys()].filter((id) => (this.byId.get(id)?.producers.length ?? 0) > 0);
  }

  producers(transactionalId?: string): FakeProducer[] {
    if (transactionalId !== undefined) return [...(this.byId.get(transactionalId)?.producers ?? [])];
    return [...this.byId.values()].flatMap((e) => e.producers);
  }

  /** How many producers were made for this id. */
  created(transactionalId: string): number {
    return this.byId.get(transactionalId)?.producers.length ?? 0;
  }

  /** The newest producer for this id. */
  current(transactionalId: string): FakeProducer | undefined {
    return this.byId.get(transactionalId)?.producers.at(-1);
  }

  callsOf(kind: CallKind, filter: CallFilter = {}): CallRecord[] {
    return this.calls.filter((c) => c.kind === kind && matches(filter, c));
  }

  /** The kinds of calls made for one id (optionally one producer of it), in order. */
  kinds(transactionalId: string, producer?: number): CallKind[] {
    return this.calls.filter((c) => c.transactionalId === transactionalId && (producer === undefined || c.producer === producer)).map((c) => c.kind);
  }

  recordsIn(state: RecordState, topic?: string): StoredRecord[] {
    return this.records.filter((r) => r.state === state && (topic === undefined || r.topic === topic));
  }

  /** Values (as utf-8) a read_committed consumer of `topic` (or all topics) would see. */
  committedValues(topic?: string): string[] {
    return this.recordsIn('committed', topic).map((r) => r.value?.toString() ?? '');
  }

  abortedValues(topic?: string): string[] {
    return this.recordsIn('aborted', topic).map((r) => r.value?.toString() ?? '');
  }

  pendingValues(topic?: string): string[] {
    return this.recordsIn('pending', topic).map((r) => r.value?.toString() ?? '');
  }

  openTransactions(): FakeTransaction[] {
    return this.transactions.filter((t) => t.state === 'open');
  }

  // --- internals used by FakeProducer ------------------------------------------------------------

  /** @internal */
  entry(transactionalId: string): { epoch: number; producers: FakeProducer[] } {
    let e = this.byId.get(transactionalId);
    if (!e) {
      e = { epoch: 0, producers: [] };
      this.byId.set(transactionalId, e);
    }
    return e;
  }

  /** @internal */
  startCall(producer: FakeProducer, kind: CallKind, timeoutMs?: number, record?: OutgoingRecord): CallRecord {
    const call: CallRecord = {
      seq: ++this.seq,
      kind,
      transactionalId: producer.transactionalId,
      producer: producer.serial,
      timeoutMs,
      record,
      startedAt: performance.now(),
      status: 'pending',
    };
    this.calls.push(call);
    return call;
  }

  /** @internal Scripted fault for this call, consumed at the call's start so call order decides. */
  takeFault(call: CallRecord): { error: KafkaClientError; commitApplied: boolean } | undefined {
    const fault = this.faults.find((f) => f.remaining > 0 && f.kind === call.kind && matches(f, call));
    if (fault) {
      fault.remaining--;
      return { error: fault.error(), commitApplied: fault.commitApplied };
    }
    const hooked = this.faultHook?.(call);
    if (hooked instanceof KafkaClientError) return { error: hooked, commitApplied: false };
    return hooked;
  }

  /** @internal */
  async gate(call: CallRecord): Promise<HoldOutcome> {
    let outcome: HoldOutcome = {};
    for (const hold of this.holds) {
      const parked = hold.tryCapture(call);
      if (parked) {
        outcome = await parked;
        break;
      }
    }
    if (this.delay) await this.delay(call);
    return outcome;
  }

  /** @internal */
  violation(message: string): void {
    this.violations.push(message);
  }

  /** @internal */
  openTransaction(producer: FakeProducer): FakeTransaction {
    const txn: FakeTransaction = {
      serial: ++this.txnSerial,
      transactionalId: producer.transactionalId,
      producer: producer.serial,
      state: 'open',
      records: [],
      offsets: [],
      commitInProgress: false,
      committedAtBroker: false,
    };
    this.transactions.push(txn);
    return txn;
  }

  /** @internal */
  append(txn: FakeTransaction, record: OutgoingRecord): StoredRecord {
    const partition = record.partition ?? this.choosePartition(record.key ?? null);
    const tp = `${record.topic}/${partition}`;
    const offset = this.offsets.get(tp) ?? 0n;
    this.offsets.set(tp, offset + 1n);
    const stored: StoredRecord = {
      topic: record.topic,
      partition,
      offset: offset.toString(),
      key: record.key ?? null,
      value: record.value,
      transactionalId: txn.transactionalId,
      producer: txn.producer,
      txn: txn.serial,
      state: 'pending',
    };
    this.records.push(stored);
    txn.records.push(stored);
    return stored;
  }

  /** @internal */
  finish(txn: FakeTransaction, state: 'committed' | 'aborted'): void {
    if (txn.state !== 'open') return;
    txn.state = state;
    for (const r of txn.records) r.state = state;
  }

  /** @internal Coordinator side of InitProducerId: whatever the id had open is aborted. */
  abortPendingOf(transactionalId: string): void {
    for (const txn of this.transactions) {
      if (txn.transactionalId === transactionalId && txn.state === 'open') this.finish(txn, txn.committedAtBroker ? 'committed' : 'aborted');
    }
  }

  private choosePartition(key: Buffer | null): number {
    if (key === null) return this.roundRobin++ % this.partitions;
    let h = 0;
    for (const b of key) h = (h * 31 + b) >>> 0;
    return h % this.partitions;
  }
}

type ProducerState = 'created' | 'ready' | 'fatal' | 'closed';

export class FakeProducer implements TransactionalProducer {
  state: ProducerState = 'created';
  epoch = -1;
  txn: FakeTransaction | undefined;
  fatalError: KafkaClientError | undefined;
  private readonly inFlight = new Set<{ kind: CallKind; txn: FakeTransaction | undefined }>();

  constructor(
    private readonly cluster: FakeCluster,
    readonly transactionalId: string,
    /** 1 for the first producer of this id, 2 for its first replacement, ... */
    readonly serial: number,
  ) {}

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** The transactions this producer opened, oldest first. */
  get transactions(): FakeTransaction[] {
    return this.cluster.transactions.filter((t) => t.transactionalId === this.transactionalId && t.producer === this.serial);
  }

  init(timeoutMs: number): Promise<void> {
    return this.invoke('init', timeoutMs, undefined, () => {
      if (this.txn) this.cluster.violation(`${this.label}: init while a transaction is open`);
      const entry = this.cluster.entry(this.transactionalId);
      entry.epoch++;
      this.cluster.abortPendingOf(this.transactionalId);
      this.epoch = entry.epoch;
      this.state = 'ready';
      this.txn = undefined;
    });
  }

  begin(): Promise<void> {
    return this.invoke('begin', undefined, undefined, () => {
      if (this.epoch < 0) throw this.misuse(kafkaErrors.state('begin before initTransactions'), 'begin before init');
      if (this.txn) throw this.misuse(kafkaErrors.state('Can only start one transaction at a time'), 'begin while a transaction is open');
      this.txn = this.cluster.openTransaction(this);
    });
  }

  send(record: OutgoingRecord): Promise<RecordMetadata> {
    return this.invoke('send', undefined, record, (txnAtStart) => {
      const txn = this.requireTxn('send', { txnAtStart });
      if (txn.mustAbort) throw txn.mustAbort;
      const stored = this.cluster.append(txn, record);
      return { topic: stored.topic, partition: stored.partition, offset: stored.offset };
    });
  }

  sendOffsets(offsets: TopicPartitionOffset[], _consumer: unknown, timeoutMs: number): Promise<void> {
    return this.invoke('sendOffsets', timeoutMs, undefined, (txnAtStart) => {
      const txn = this.requireTxn('sendOffsets', { txnAtStart });
      if (txn.mustAbort) throw txn.mustAbort;
      txn.offsets.push(offsets);
    });
  }

  commit(timeoutMs: number): Promise<void> {
    return this.invoke('commit', timeoutMs, undefined, () => {
      const txn = this.requireTxn('commit');
      if (txn.mustAbort) throw txn.mustAbort;
      this.cluster.finish(txn, 'committed');
      this.txn = undefined;
    });
  }

  abort(timeoutMs: number): Promise<void> {
    return this.invoke('abort', timeoutMs, undefined, () => {
      const txn = this.requireTxn('abort');
      if (txn.commitInProgress || txn.committedAtBroker) throw kafkaErrors.conflict();
      this.cluster.finish(txn, 'aborted');
      this.txn = undefined;
    });
  }

  async close(timeoutMs: number): Promise<void> {
    const call = this.cluster.startCall(this, 'close', timeoutMs);
    await this.cluster.gate(call);
    this.state = 'closed';
    call.status = 'ok';
  }

  private get label(): string {
    return `${this.transactionalId}#${this.serial}`;
  }

  private misuse(error: KafkaClientError, what: string): KafkaClientError {
    this.cluster.violation(`${this.label}: ${what}`);
    return error;
  }

  /**
   * The open transaction a call belongs to. Sends and offsets belong to the transaction open when
   * they started: if it was aborted meanwhile they were purged (as librdkafka's abort does); if it
   * ended otherwise, they came too late.
   */
  private requireTxn(what: string, started?: { txnAtStart: FakeTransaction | undefined }): FakeTransaction {
    const txnAtStart = started?.txnAtStart;
    if (started && txnAtStart !== this.txn) {
      if (txnAtStart?.state === 'aborted') throw kafkaErrors.purged();
      if (txnAtStart) throw this.misuse(kafkaErrors.state(`${what} after its transaction ended`), `${what} completed after its transaction was ${txnAtStart.state}`);
    }
    if (!this.txn) throw this.misuse(kafkaErrors.state(`${what} outside a transaction`), `${what} outside a transaction`);
    return this.txn;
  }

  private async invoke<T>(
    kind: CallKind,
    timeoutMs: number | undefined,
    record: OutgoingRecord | undefined,
    apply: (txnAtStart: FakeTransaction | undefined) => T,
  ): Promise<T> {
    const call = this.cluster.startCall(this, kind, timeoutMs, record);
    if (this.state === 'closed') {
      this.cluster.violation(`${this.label}: ${kind} after close`);
      call.status = 'error';
      call.error = kafkaErrors.destroyed();
      throw call.error;
    }
    // Deliveries of an aborted transaction no longer count: librdkafka's abort purges them and
    // waits for that before it returns (their JS callbacks may still come later).
    const others = [...this.inFlight]
      .filter((c) => !((c.kind === 'send' || c.kind === 'sendOffsets') && c.txn?.state === 'aborted'))
      .map((c) => c.kind);
    // Abort may overlap sends (it purges them); nothing else may overlap a control call.
    const allowed = kind === 'abort' && others.every((k) => k === 'send' || k === 'sendOffsets');
    if (others.length > 0 && !allowed && (CONTROL_CALLS.has(kind) || others.some((k) => CONTROL_CALLS.has(k)))) {
      this.cluster.violation(`${this.label}: ${kind} while ${others.join(', ')} in flight`);
    }
    const txnAtStart = this.txn;
    const inFlight = { kind, txn: txnAtStart };
    this.inFlight.add(inFlight);
    const scripted = this.cluster.takeFault(call);
    let held: HoldOutcome;
    try {
      held = await this.cluster.gate(call);
    } finally {
      this.inFlight.delete(inFlight);
    }
    try {
      const value = this.complete(kind, txnAtStart, () => apply(txnAtStart), held.error ? { error: held.error, commitApplied: held.commitApplied ?? false } : scripted);
      call.status = 'ok';
      return value;
    } catch (error) {
      call.status = 'error';
      call.error = error;
      throw error;
    }
  }

  private complete<T>(
    kind: CallKind,
    txnAtStart: FakeTransaction | undefined,
    apply: () => T,
    fault: { error: KafkaClientError; commitApplied: boolean } | undefined,
  ): T {
    if (this.state === 'closed') throw kafkaErrors.destroyed();
    // Fencing is noticed by the first broker round trip after another init of the id; begin is local.
    if (this.state === 'ready' && kind !== 'begin' && kind !== 'init' && this.epoch < this.cluster.entry(this.transactionalId).epoch) {
      this.state = 'fatal';
      this.fatalError = kafkaErrors.fenced();
    }
    if (this.state === 'fatal') throw this.fatalError;
    if (fault) {
      // A delivery outlived by its transaction's abort was purged with it: its own failure never
      // reaches the transaction open now (as with librdkafka, whose abort purges what is in flight).
      if ((kind === 'send' || kind === 'sendOffsets') && txnAtStart !== this.txn && txnAtStart?.state === 'aborted') throw kafkaErrors.purged();
      this.applyFault(kind, fault.error, fault.commitApplied);
      throw fault.error;
    }
    return apply();
  }

  private applyFault(kind: CallKind, error: KafkaClientError, commitApplied: boolean): void {
    if (error.fatal) {
      this.state = 'fatal';
      this.fatalError = error;
      if (kind === 'commit' && commitApplied && this.txn) {
        this.txn.committedAtBroker = true;
        this.cluster.finish(this.txn, 'committed');
      }
      return;
    }
    const txn = this.txn;
    if (!txn) return;
    if (kind === 'sendOffsets') {
      // librdkafka: a retriable sendOffsets may simply be called again; an abortable one dooms the transaction.
      if (!error.retriable) txn.mustAbort = error.txnRequiresAbort ? error : new KafkaClientError(`transaction failed: ${error.message}`, { ...error, txnRequiresAbort: true });
    } else if (kind === 'send') {
      // librdkafka: a failed delivery inside a transaction makes the transaction abortable.
      txn.mustAbort = new KafkaClientError(`transaction failed: ${error.message}`, {
        code: error.code,
        codeName: error.codeName,
        fatal: false,
        retriable: false,
        txnRequiresAbort: true,
      });
    } else if (kind === 'commit') {
      if (error.txnRequiresAbort) {
        // The commit attempt is over (it failed); abort is now the way out.
        txn.mustAbort = error;
        txn.commitInProgress = false;
      } else if (error.retriable) {
        txn.commitInProgress = true;
        if (commitApplied && !txn.committedAtBroker) {
          txn.committedAtBroker = true;
          this.cluster.finish(txn, 'committed');
        }
      }
    }
  }
}

// --- pool test defaults -------------------------------------------------------------------------

/** A record whose value is `value` (utf-8), for tests. */
export function rec(value: string, topic = 't', partition?: number): OutgoingRecord {
  return partition === undefined ? { topic, value: Buffer.from(value) } : { topic, partition, value: Buffer.from(value) };
}

/**
 * Options for a pool over `cluster` with short retry/backoff timings, so unit tests that go
 * through retries and replacements finish in milliseconds.
 */
export function fakePoolOptions(cluster: FakeCluster, overrides: Partial<PoolOptions> = {}): PoolOptions {
  return {
    producerFactory: cluster.factory,
    size: 2,
    transactionalIdPrefix: 'tx',
    instanceId: 'i1',
    maxWaiting: 100,
    acquireTimeoutMs: 5000,
    initTimeoutMs: 1000,
    commitTimeoutMs: 100,
    abortTimeoutMs: 1000,
    closeTimeoutMs: 2000,
    retry: { deadlineMs: 200, initialBackoffMs: 1, maxBackoffMs: 5 },
    replaceBackoffMs: 5,
    healthCheckIntervalMs: 10,
    ...overrides,
  };
}

/** A pool over `cluster` with fakePoolOptions(cluster, overrides), started. */
export async function startPool(cluster: FakeCluster, overrides: Partial<PoolOptions> = {}): Promise<TransactionalProducerPool> {
  const pool = new TransactionalProducerPool(fakePoolOptions(cluster, overrides));
  await pool.start();
  return pool;
}
