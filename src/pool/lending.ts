/**
 * Lending slots to callers: an idle slot at once, otherwise a place in the bounded FIFO line
 * (WaitQueue); and taking a healthy slot back, to the longest waiter or to the idle list.
 */
import { SpanStatusCode, context, trace } from '@opentelemetry/api';
import { AcquireAbortedError, PoolClosedError } from '../errors.js';
import type { PoolContext } from './context.js';
import type { Slot } from './slot.js';
import type { PoolEvents, RunOptions } from './types.js';
import { WaitQueue } from './wait-queue.js';

type RejectReason = Parameters<NonNullable<PoolEvents['rejected']>>[0]['reason'];

export class Lending {
  private readonly waiters: WaitQueue<Slot>;

  constructor(private readonly ctx: PoolContext) {
    this.waiters = new WaitQueue<Slot>(ctx.options.maxWaiting);
  }

  get waiting(): number {
    return this.waiters.length;
  }

  async acquire(options: RunOptions): Promise<Slot> {
    const { ctx } = this;
    if (!ctx.started || ctx.closing) {
      this.reject('closed');
      throw new PoolClosedError(ctx.started ? 'the pool is closing' : 'the pool was not started');
    }
    if (options.signal?.aborted) {
      this.reject('aborted');
      throw new AcquireAbortedError(options.signal.reason);
    }
    const since = Date.now();
    let slot = ctx.slots.takeIdle();
    if (!slot) {
      // A span for the wait, only inside a caller's recorded trace (OpenTelemetry API only: a no-op
      // without an SDK); taking an idle producer is instant and gets none.
      const parent = context.active();
      const span = trace.getSpan(parent)?.isRecording()
        ? trace.getTracer('txgate').startSpan('txgate.pool.acquire', { attributes: { 'txgate.pool.waiting': this.waiters.length } }, parent)
        : undefined;
      try {
        // Whoever serves this waiter has already moved the slot to busy.
        slot = await this.waiters.wait(options.acquireTimeoutMs ?? ctx.options.acquireTimeoutMs, options.signal);
        span?.setAttributes({ 'txgate.producer.slot': slot.index, 'txgate.transactional_id': slot.transactionalId });
      } catch (error) {
        const code = (error as { code?: string }).code;
        this.reject(code === 'TXGATE_POOL_SATURATED' ? 'saturated' : code === 'TXGATE_ACQUIRE_TIMEOUT' ? 'timeout' : code === 'TXGATE_POOL_CLOSED' ? 'closed' : 'aborted');
        span?.setAttribute('error.type', code ?? 'Error');
        span?.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        throw error;
      } finally {
        span?.end();
      }
    }
    slot.force = new AbortController();
    slot.lastUsedAt = Date.now();
    ctx.options.events?.acquired?.({ slot: slot.index, waitedMs: Date.now() - since });
    return slot;
  }

  reject(reason: RejectReason): void {
    this.ctx.counters.rejected++;
    this.ctx.options.events?.rejected?.({ reason });
  }

  /** The slot's producer is healthy again: hand it to the longest waiter, or park it. */
  release(slot: Slot): void {
    if (slot.state === 'closed') return;
    slot.lastUsedAt = Date.now();
    this.makeAvailable(slot);
  }

  /** Parks the slot, then lends it at once if somebody waits (never while closing). */
  makeAvailable(slot: Slot): void {
    const { slots } = this.ctx;
    slots.move(slot, 'idle');
    if (this.ctx.closing || this.waiters.length === 0) return;
    // Callers wait only while no slot is idle, so the slot taken is the one just parked.
    this.waiters.serve(slots.takeIdle()!);
  }

  /** Refuses every waiter (the pool is closing or failed to start). */
  rejectAll(error: unknown): void {
    this.waiters.rejectAll(error);
  }
}
