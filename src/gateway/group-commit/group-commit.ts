/**
 * Group commit: packs requests that wait for a producer into one Kafka transaction.
 *
 * A batch is "open" from the moment it asks the pool for a producer until its work starts. New
 * requests join the open batch while it has room; otherwise they open a new batch (and ask the
 * pool at once). With a free producer a request therefore runs alone and immediately (no added
 * delay under light load); under load, requests pile into the batch that waits for the next free
 * producer. The batch is sealed when its work starts.
 *
 * Inside a transaction every record is sent with its own tx.send() so that a refusal is
 * attributable to one request. When some request poisons the batch (Kafka refused one of its
 * records), the work throws, the pool aborts, and only that request fails; its batch-mates are
 * resubmitted. Who is to blame for what is decided in blame.ts.
 */
import { AcquireAbortedError, PoolClosedError, TransactionAbortedError, TransactionOutcomeUnknownError } from '../../errors.js';
import { context, type Span } from '@opentelemetry/api';
import type { OutgoingRecord, RecordMetadata } from '../../pool/producer-port.js';
import type { Transaction, TransactionResult } from '../../pool/types.js';
import { DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_RECORDS, DEFAULT_MAX_BATCH_REQUESTS } from '../defaults.js';
import { judgeAttempt, type Disposition } from './blame.js';
import { endTransaction, endWait, memberTrace, startTransaction, startWait, waitContext, type MemberTrace } from './batch-tracing.js';
import { callHook, recordSize, sendOne, settle, type Settling } from './deliveries.js';
import type { BatchParticipant, TransactionRunner } from './participant.js';

export interface GroupCommitRequest {
  records: OutgoingRecord[];
  signal?: AbortSignal | undefined;
  participant?: BatchParticipant | undefined;
}

export interface GroupCommitOptions {
  pool: TransactionRunner;
  maxBatchRequests?: number;
  maxBatchRecords?: number;
  /** Most bytes (keys, values, headers) in one transaction; a single larger request still runs alone. */
  maxBatchBytes?: number;
  /**
   * After the first refused record, how long to wait for the rest of the batch's deliveries
   * before deciding. Deliveries queued behind a failed one may only settle when the pool aborts.
   */
  failureSettleMs?: number;
}

export interface GroupCommitStats {
  pendingRequests: number;
  openBatches: number;
  transactions: number;
  requests: number;
  batchedRequests: number;
}


interface Item {
  req: GroupCommitRequest;
  resolve(records: RecordMetadata[]): void;
  reject(err: unknown): void;
  batch: Batch | undefined;
  detachSignal: (() => void) | undefined;
  purgeRetries: number;
  timeoutRetries: number;
  /** Bytes of its records (keys, values, headers). */
  bytes: number;
  /** The request's span (when traced) and its current wait span. */
  trace: MemberTrace | undefined;
}


let batchIds = 0;

class Batch {
  /** Names the batch in traces (its members' spans are in different traces). */
  readonly id = ++batchIds;
  readonly items: Item[] = [];
  records = 0;
  bytes = 0;
  started = false;
  readonly controller = new AbortController();
  /** Set by the work when it throws on purpose: what to do with each item after the abort. */
  dispositions: Map<Item, Disposition> | undefined;
  /** Its Kafka transaction's span, from the start of the work to the commit or abort. */
  span: Span | undefined;
  constructor(readonly solo: boolean) {}
}

/** Thrown from the work so that the pool aborts; the dispositions live on the batch. */
class BatchPoisoned extends Error {
  constructor() {
    super('a request in this batch was refused; the batch is aborted and its other requests resubmitted');
    this.name = 'BatchPoisoned';
  }
}

/** Why a batch's pool request is cancelled: every request left it while it waited. */
class EmptyBatch extends Error {
  constructor() {
    super('batch emptied before it started');
    this.name = 'EmptyBatch';
  }
}

export class GroupCommitter {
  private readonly pool: TransactionRunner;
  private readonly maxBatchRequests: number;
  private readonly maxBatchRecords: number;
  private readonly maxBatchBytes: number;
  private readonly failureSettleMs: number;
  private open: Batch | undefined;
  private readonly waiting = new Set<Batch>();
  private readonly running = new Set<Batch>();
  private pending = 0;
  private closed = false;
  /** close()'s deadline has passed: nothing waits for a producer any more, nor starts waiting again. */
  private pastDeadline = false;
  private drained: (() => void) | undefined;
  private drainedPromise: Promise<void> | undefined;
  private readonly counters = { transactions: 0, requests: 0, batchedRequests: 0 };

  constructor(opts: GroupCommitOptions) {
    this.pool = opts.pool;
    this.maxBatchRequests = Math.max(1, opts.maxBatchRequests ?? DEFAULT_MAX_BATCH_REQUESTS);
    this.maxBatchRecords = Math.max(1, opts.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS);
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES);
    this.failureSettleMs = opts.failureSettleMs ?? 2_000;
  }

  /** Resolves with the request's own records' positions, in request order, once committed. */
  submit(req: GroupCommitRequest): Promise<RecordMetadata[]> {
    if (this.closed) return Promise.reject(new PoolClosedError('the gateway is shutting down'));
    if (req.signal?.aborted) return Promise.reject(new AcquireAbortedError(req.signal.reason));
    return new Promise<RecordMetadata[]>((resolve, reject) => {
      this.pending++;
      const item: Item = {
        req,
        resolve: (records) => {
          this.settled(item);
          resolve(records);
        },
        reject: (err) => {
          endWait(item.trace, err);
          this.settled(item);
          reject(err);
        },
        batch: undefined,
        detachSignal: undefined,
        bytes: req.records.reduce((n, r) => n + recordSize(r), 0),
        purgeRetries: 0,
        timeoutRetries: 0,
        trace: memberTrace(),
      };
      this.enqueue(item);
    });
  }

  stats(): GroupCommitStats {
    return { pendingRequests: this.pending, openBatches: this.waiting.size, ...this.counters };
  }

  /**
   * Refuses new requests and waits until every accepted one has settled. At the deadline,
   * requests still waiting for a producer are failed with PoolClosedError; transactions already
   * running are never abandoned, so the wait then continues until they end.
   */
  async close(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.closed = true;
    if (this.pending === 0) return;
    // One promise for every close() call: a second call must not orphan the first one's wait.
    const drained = (this.drainedPromise ??= new Promise<void>((resolve) => (this.drained = resolve)));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), opts.timeoutMs ?? 30_000);
    });
    const first = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.pastDeadline = true;
      for (const batch of [...this.waiting]) {
        for (const item of batch.items.splice(0)) item.reject(new PoolClosedError('the gateway shut down before this request got a producer'));
        this.dropIfEmpty(batch);
      }
      await drained;
    }
  }

  private settled(item: Item): void {
    item.detachSignal?.();
    item.detachSignal = undefined;
    this.pending--;
    if (this.pending === 0) this.drained?.();
  }

  private enqueue(item: Item, solo = false): void {
    if (solo) {
      const batch = new Batch(true);
      this.add(batch, item);
      this.start(batch);
      return;
    }
    const open = this.open;
    if (open && !open.started && this.fits(open, item)) {
      this.add(open, item);
      return;
    }
    const batch = new Batch(false);
    this.open = batch;
    this.add(batch, item);
    this.start(batch);
  }

  private fits(batch: Batch, item: Item): boolean {
    return (
      batch.items.length < this.maxBatchRequests &&
      batch.records + item.req.records.length <= this.maxBatchRecords &&
      (batch.items.length === 0 || batch.bytes + item.bytes <= this.maxBatchBytes)
    );
  }

  private add(batch: Batch, item: Item): void {
    if (item.trace) startWait(item.trace, batch.id, batch.items.length === 0 && !batch.started);
    batch.items.push(item);
    batch.records += item.req.records.length;
    batch.bytes += item.bytes;
    item.batch = batch;
    const signal = item.req.signal;
    if (signal && !item.detachSignal) {
      const onAbort = (): void => this.leave(item, signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      item.detachSignal = () => signal.removeEventListener('abort', onAbort);
    }
    if (this.open === batch && !this.fitsAnother(batch)) this.open = undefined;
  }

  private fitsAnother(batch: Batch): boolean {
    return batch.items.length < this.maxBatchRequests && batch.records < this.maxBatchRecords && batch.bytes < this.maxBatchBytes;
  }

  /** The caller went away: honoured only while its batch still waits for a producer. */
  private leave(item: Item, reason: unknown): void {
    const batch = item.batch;
    if (!batch || batch.started) return;
    const at = batch.items.indexOf(item);
    if (at < 0) return;
    batch.items.splice(at, 1);
    batch.records -= item.req.records.length;
    batch.bytes -= item.bytes;
    item.reject(new AcquireAbortedError(reason));
    this.dropIfEmpty(batch);
  }

  private dropIfEmpty(batch: Batch): void {
    if (batch.items.length > 0 || batch.started) return;
    if (this.open === batch) this.open = undefined;
    batch.controller.abort(new EmptyBatch());
  }

  private start(batch: Batch): void {
    this.waiting.add(batch);
    let result: Promise<TransactionResult<RecordMetadata[][]>>;
    const run = () => this.pool.run((tx) => this.work(batch, tx), { signal: batch.controller.signal });
    try {
      const waiting = waitContext(batch.items[0]?.trace);
      result = waiting ? context.with(waiting, run) : run();
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (res) => this.onCommitted(batch, res),
      (err: unknown) => this.onFailed(batch, err),
    );
  }

  private async work(batch: Batch, tx: Transaction): Promise<RecordMetadata[][]> {
    batch.started = true;
    this.waiting.delete(batch);
    this.running.add(batch);
    if (this.open === batch) this.open = undefined;
    const items = batch.items.slice();
    for (const item of items) {
      item.detachSignal?.();
      item.detachSignal = undefined;
    }
    // Every caller left between the pool's hand-over and now: send nothing (the pool then
    // commits nothing, and counts no abort).
    if (items.length === 0) return [];
    batch.span = startTransaction(
      items.map((item) => item.trace),
      { batchId: batch.id, records: batch.records, bytes: batch.bytes, transactionalId: tx.transactionalId, slot: tx.slot },
    );

    // Participants first, so that their records (the idempotency claims) lead the transaction,
    // and their checks done before any data goes out: a claim check waits for a consumer round
    // trip, and data sent meanwhile would hold the last stable offset of the user's partitions
    // (stalling their read_committed readers) for that long. A batch a claim check rejects then
    // aborts having written no data at all.
    const begun = items.map((item) => settle(callHook(() => item.req.participant?.begin?.(tx))));
    if (items.some((item) => item.req.participant?.begin)) await this.settleAll(begun);
    const rejected = begun.some((s) => s.outcome?.ok === false);
    const sent = items.map((item) => (rejected ? [] : item.req.records.map((record) => settle(sendOne(tx, record)))));
    const all = [...begun, ...sent.flat()];

    await this.settleAll(all);

    const verdict = judgeAttempt(items, begun, sent);
    if (verdict.kind === 'fail-all') throw verdict.error;
    if (verdict.kind === 'commit') {
      await Promise.all(items.map((item, i) => item.req.participant?.finish?.(tx, verdict.perItem[i]!)));
      return verdict.perItem;
    }
    items.forEach((item, i) => {
      if (verdict.reason === 'purged') item.purgeRetries++;
      if (verdict.reason === 'timed-out' && verdict.dispositions[i]!.kind === 'retry') item.timeoutRetries++;
    });
    batch.dispositions = new Map(items.map((item, i) => [item, verdict.dispositions[i]!]));
    throw new BatchPoisoned();
  }

  /** Waits for every send; after the first failure, waits at most failureSettleMs for the rest. */
  private async settleAll(all: Settling[]): Promise<void> {
    const everything = Promise.all(all.map((s) => s.done));
    const firstFailure = new Promise<void>((resolve) => {
      for (const s of all) void s.done.then(() => s.outcome?.ok === false && resolve());
    });
    await Promise.race([everything, firstFailure]);
    if (all.every((s) => s.outcome !== undefined)) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([everything, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.failureSettleMs)))]);
    clearTimeout(timer);
  }

  private onCommitted(batch: Batch, res: TransactionResult<RecordMetadata[][]>): void {
    this.running.delete(batch);
    this.waiting.delete(batch);
    endTransaction(batch.span);
    const items = batch.items;
    if (items.length === 0) return;
    this.counters.transactions++;
    this.counters.requests += items.length;
    if (items.length > 1) this.counters.batchedRequests += items.length;
    items.forEach((item, i) => {
      const records = res.value[i] ?? [];
      try {
        item.req.participant?.committed?.(records);
      } catch {
        // Bookkeeping only (remembering an idempotency key): the records are committed regardless.
      }
      item.resolve(records);
    });
  }

  private onFailed(batch: Batch, err: unknown): void {
    this.running.delete(batch);
    this.waiting.delete(batch);
    if (this.open === batch) this.open = undefined;
    const items = batch.items.splice(0);
    const dispositions = batch.dispositions;
    endTransaction(batch.span, { error: err, ...(dispositions ? { poisoned: poisonCounts(dispositions) } : {}) });
    if (items.length === 0) return;
    // The pool reports our own throw as an abort; an unknown outcome (the abort itself failed)
    // leaves every request unknown, as the pool says.
    const certainlyAborted = batch.started && !(err instanceof TransactionOutcomeUnknownError);
    if (certainlyAborted && (err instanceof TransactionAbortedError || dispositions)) {
      for (const item of items) item.req.participant?.aborted?.();
    }
    if (!dispositions || !certainlyAborted) {
      for (const item of items) item.reject(err);
      return;
    }
    const retry: Item[] = [];
    for (const item of items) {
      const d = dispositions.get(item) ?? { kind: 'retry' };
      if (d.kind === 'fail') item.reject(d.error);
      // Past close()'s deadline a survivor would wait for a producer again: it fails as the
      // requests still waiting did. Its attempt was aborted, so nothing of it was written.
      else if (this.pastDeadline) item.reject(new PoolClosedError('the gateway shut down before this request could run again'));
      else if (d.kind === 'retry-alone') this.requeue(item, true);
      // A caller that left while this attempt ran is not run again: requeue refuses it.
      else if (item.req.signal?.aborted) this.requeue(item, false);
      else retry.push(item);
    }
    // Survivors already waited once: they go into the batch that is next to run, ahead of newer arrivals.
    const open = this.open;
    if (retry.length > 0 && open && !open.started && this.fitsAll(open, retry)) {
      for (const item of retry.reverse()) this.addFront(open, item);
      return;
    }
    for (const item of retry) this.requeue(item, false);
  }

  private fitsAll(batch: Batch, items: Item[]): boolean {
    const records = items.reduce((n, it) => n + it.req.records.length, 0);
    const bytes = items.reduce((n, it) => n + it.bytes, 0);
    return (
      batch.items.length + items.length <= this.maxBatchRequests &&
      batch.records + records <= this.maxBatchRecords &&
      batch.bytes + bytes <= this.maxBatchBytes
    );
  }

  private addFront(batch: Batch, item: Item): void {
    this.add(batch, item);
    batch.items.pop();
    batch.items.unshift(item);
  }

  private requeue(item: Item, solo: boolean): void {
    item.batch = undefined;
    if (item.req.signal?.aborted) {
      item.reject(new AcquireAbortedError(item.req.signal.reason));
      return;
    }
    this.enqueue(item, solo);
  }
}

/** For the transaction span of a poisoned batch: requests failed, and requests sent back to run again. */
function poisonCounts(dispositions: Map<Item, Disposition>): { failed: number; retried: number } {
  let failed = 0;
  for (const d of dispositions.values()) if (d.kind === 'fail') failed++;
  return { failed, retried: dispositions.size - failed };
}
