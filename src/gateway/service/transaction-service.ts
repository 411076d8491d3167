/**
 * The gateway's core: one submit() is one request's records, committed atomically in a Kafka
 * transaction (shared with other waiting requests by group commit), optionally made idempotent
 * by a key whose outcome is written inside that same transaction. The HTTP layer sits on top.
 */
import { PoolClosedError } from '../../errors.js';
import type { OutgoingRecord, RecordMetadata } from '../../pool/producer-port.js';
import { GroupCommitter } from '../group-commit/group-commit.js';
import type { TransactionRunner } from '../group-commit/participant.js';
import { ClaimConflictError, type KeyClaim } from '../idempotency/key-claim.js';
import type { IdempotencyPorts } from '../idempotency/ports.js';
import { IdempotencyStore, type Logger } from '../idempotency/store.js';
import { createKafkaIdempotencyPorts } from '../../kafka/idempotency-log.js';
import type { KafkaProps } from '../../kafka/props.js';
import type { StartContext } from '../startup.js';

export interface SubmitRequest {
  /** Already validated and converted by the HTTP layer (topic exists, sizes within limits). */
  records: OutgoingRecord[];
  /** key as sent (scoped by principal if auth is on); fingerprint = sha256 hex of the canonical request body. */
  idempotency?: { key: string; fingerprint: string } | undefined;
  /** The HTTP request went away: honoured only while waiting, never abandons a started transaction. */
  signal?: AbortSignal | undefined;
}

export interface SubmitResult {
  /** The request's own records, in request order. */
  records: RecordMetadata[];
  /** True: an earlier committed outcome for this idempotency key; nothing new was written. */
  replayed: boolean;
}

export interface TransactionServiceOptions {
  /** A TransactionalProducerPool (any object with its run()). The service never closes it. */
  pool: TransactionRunner;
  /** librdkafka client properties ('bootstrap.servers', TLS/SASL...) for the idempotency topic's consumers and admin client. */
  kafka: KafkaProps;
  /** Replaces the Kafka adapters of the idempotency store (default: made from `kafka`). */
  idempotencyPorts?: IdempotencyPorts;
  /** Default 'txgate.idempotency' (compacted with a time retention, created at start if missing). */
  idempotencyTopic?: string;
  /** Partitions of the idempotency topic when this service creates it (default 3). */
  idempotencyPartitions?: number;
  /** Group commit: max requests per transaction (default DEFAULT_MAX_BATCH_REQUESTS). */
  maxBatchRequests?: number;
  /** And max records per transaction (default DEFAULT_MAX_BATCH_RECORDS). */
  maxBatchRecords?: number;
  /** And max bytes of keys, values and headers per transaction (default DEFAULT_MAX_BATCH_BYTES). */
  maxBatchBytes?: number;
  /** How long a keyed request may wait for another writer of its key, or for the topic to catch up (default 5000). */
  idempotencyCatchUpTimeoutMs?: number;
  /** How long start() may take to load the idempotency topic (default 60000). */
  idempotencyStartTimeoutMs?: number;
  /**
   * How long an idempotency key is answered after its request committed (default 24 h); after it
   * a request with the key runs as new. Keep it far above transaction.timeout.ms (the CLI
   * requires at least 10 minutes; tests may go lower).
   */
  idempotencyRetentionMs?: number;
  logger?: Logger;
}

export interface TransactionServiceStats {
  /** Requests accepted and not yet answered (deciding a key, waiting in a batch, or in a transaction). */
  pendingRequests: number;
  /** Batches waiting for a producer. */
  openBatches: number;
  /** Transactions committed. */
  transactions: number;
  /** Requests committed (requests / transactions = average batch size). */
  requests: number;
  /** Committed requests that shared their transaction with at least one other. */
  batchedRequests: number;
  /**
   * Idempotency keys known (committed outcomes in the local key index, until swept after the
   * retention; 28-byte slots, at most 3/4 of them used; the recent ones also held in full).
   */
  idempotencyKeys: number;
}

export class TransactionService {
  private readonly committer: GroupCommitter;
  private readonly store: IdempotencyStore;
  private readonly logger: Logger | undefined;
  private pending = 0;
  private state: 'new' | 'started' | 'closing' | 'closed' = 'new';
  private closing: Promise<void> | undefined;
  private readonly drainWaiters: Array<() => void> = [];

  constructor(opts: TransactionServiceOptions) {
    this.logger = opts.logger;
    this.committer = new GroupCommitter({
      pool: opts.pool,
      maxBatchRequests: opts.maxBatchRequests,
      maxBatchRecords: opts.maxBatchRecords,
      maxBatchBytes: opts.maxBatchBytes,
    });
    this.store = new IdempotencyStore({
      ...(opts.idempotencyPorts ?? createKafkaIdempotencyPorts(opts.kafka)),
      topic: opts.idempotencyTopic,
      partitions: opts.idempotencyPartitions,
      catchUpTimeoutMs: opts.idempotencyCatchUpTimeoutMs,
      startTimeoutMs: opts.idempotencyStartTimeoutMs,
      retentionMs: opts.idempotencyRetentionMs,
      logger: opts.logger,
    });
  }

  /**
   * Ensures the idempotency topic and loads it to its end: call before reporting ready. Its Kafka
   * steps are retried until ctx.deadline (default: idempotencyStartTimeoutMs from now); ctx.signal
   * stops them (close() while starting), ctx.progress hears which step it is at.
   */
  async start(ctx: Partial<StartContext> = {}): Promise<void> {
    if (this.state !== 'new') throw new Error(`the transaction service cannot start: it is ${this.state}`);
    await this.store.start(ctx);
    this.state = 'started';
  }

  async submit(req: SubmitRequest): Promise<SubmitResult> {
    if (this.state !== 'started') {
      throw new PoolClosedError(this.state === 'new' ? 'the transaction service is not started' : 'the gateway is shutting down');
    }
    this.pending++;
    try {
      if (!req.idempotency) {
        const records = await this.committer.submit({ records: req.records, signal: req.signal });
        return { records, replayed: false };
      }
      return await this.submitKeyed(req, req.idempotency);
    } finally {
      this.pending--;
      if (this.pending === 0) for (const wake of this.drainWaiters.splice(0)) wake();
    }
  }

  stats(): TransactionServiceStats {
    const gc = this.committer.stats();
    return {
      pendingRequests: this.pending,
      openBatches: gc.openBatches,
      transactions: gc.transactions,
      requests: gc.requests,
      batchedRequests: gc.batchedRequests,
      idempotencyKeys: this.store.keys,
    };
  }

  /**
   * Stops accepting (PoolClosedError), lets what was accepted finish, then stops the idempotency
   * consumers. Past the deadline, requests still waiting for a producer fail with
   * PoolClosedError; running transactions are never abandoned. Does not close the pool.
   */
  async close(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') {
      await this.closing;
      return;
    }
    this.state = 'closing';
    this.closing = this.drainAndClose(opts.timeoutMs ?? 30_000);
    await this.closing;
  }

  private async drainAndClose(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // Accepted keyed requests may still be deciding their key: the committer stays open for them.
    await this.drained(deadline - Date.now());
    await this.committer.close({ timeoutMs: Math.max(0, deadline - Date.now()) });
    await this.drained(Number.POSITIVE_INFINITY);
    this.state = 'closed';
    await this.store.close();
  }

  /** Resolves when no request is pending, or after timeoutMs. */
  private async drained(timeoutMs: number): Promise<void> {
    if (this.pending === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.drainWaiters.push(resolve)),
      new Promise<void>((resolve) => {
        if (Number.isFinite(timeoutMs)) timer = setTimeout(resolve, Math.max(0, timeoutMs));
      }),
    ]);
    clearTimeout(timer);
  }

  private async submitKeyed(req: SubmitRequest, idem: { key: string; fingerprint: string }): Promise<SubmitResult> {
    let decision = await this.store.begin(idem.key, idem.fingerprint, req.signal);
    if (decision.kind === 'replay') return { records: decision.outcome.records, replayed: true };
    const claim: KeyClaim = decision.claim;
    try {
      for (;;) {
        try {
          const records = await this.committer.submit({ records: req.records, signal: req.signal, participant: claim });
          return { records, replayed: false };
        } catch (err) {
          if (!(err instanceof ClaimConflictError)) throw err;
          // Another writer claimed the key first; our transaction was aborted. Its outcome decides.
          this.logger?.info({ key: idem.key }, 'idempotency key claimed concurrently elsewhere; deciding again');
          decision = await this.store.redecide(claim, req.signal);
          if (decision.kind === 'replay') return { records: decision.outcome.records, replayed: true };
        }
      }
    } finally {
      claim.release();
    }
  }
}
