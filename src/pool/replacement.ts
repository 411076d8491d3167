/**
 * Opening and closing a slot's producer, replacing a broken one in place (same slot, same
 * transactional id), and renewing idle slots before their id can expire on the coordinator.
 */
import { backoffDelay, sleep } from './backoff.js';
import { describe, type PoolContext } from './context.js';
import type { Slot } from './slot.js';
import type { ReplaceCause } from './types.js';

/** Fencings of one slot within this window count towards a fencing storm. */
const FENCING_STORM_WINDOW_MS = 5 * 60_000;
const FENCING_STORM_THRESHOLD = 3;

export class Replacement {
  private healthTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: PoolContext,
    /** Gives a slot whose new producer initialised back to lending. */
    private readonly release: (slot: Slot) => void,
  ) {}

  /** Creates the slot's producer and initialises it (InitProducerId: fences older holders of the id). */
  async openProducer(slot: Slot): Promise<void> {
    const { options } = this.ctx;
    const producer = options.producerFactory(slot.transactionalId);
    slot.producer = producer;
    try {
      await producer.init(options.initTimeoutMs);
      slot.lastError = undefined;
    } catch (error) {
      slot.lastError = describe(error);
      slot.producer = undefined;
      options.events?.initFailed?.({ slot: slot.index, transactionalId: slot.transactionalId, error });
      await producer.close(options.closeTimeoutMs);
      throw error;
    }
  }

  async closeProducer(slot: Slot): Promise<void> {
    const producer = slot.producer;
    slot.producer = undefined;
    if (producer) await producer.close(this.ctx.options.closeTimeoutMs);
  }

  /** Closes every producer, then every slot: only once nothing is lent or being replaced. */
  async closeAll(): Promise<void> {
    await Promise.all(this.ctx.slots.all.map((slot) => this.closeProducer(slot)));
    this.ctx.slots.closeAll();
  }

  /**
   * Closes the slot's producer and creates a new one with the same transactional id, retrying
   * until it initialises or the pool closes. Runs in the background: the caller that hit the
   * error gets its answer at once, and the other slots keep serving.
   */
  replace(slot: Slot, cause: ReplaceCause, error?: unknown): void {
    // Whoever noticed first has started the replacement; a closed slot stays closed.
    if (slot.state === 'replacing' || slot.state === 'closed') return;
    const { ctx } = this;
    ctx.slots.move(slot, 'replacing');
    slot.lastError = error === undefined ? slot.lastError : describe(error);
    ctx.counters.replacements++;
    ctx.options.events?.replacing?.({ slot: slot.index, transactionalId: slot.transactionalId, cause, error });
    ctx.track(this.replaceLoop(slot, cause));
  }

  private async replaceLoop(slot: Slot, cause: ReplaceCause): Promise<void> {
    const { ctx } = this;
    await this.closeProducer(slot);
    if (cause === 'fenced' && !(await this.backOffFromFencingStorm(slot))) {
      ctx.slots.move(slot, 'closed');
      return;
    }
    for (let attempt = 0; !ctx.closing; attempt++) {
      try {
        await this.openProducer(slot);
      } catch {
        const delay = backoffDelay(attempt, ctx.options.replaceBackoffMs, 30_000);
        if (!(await sleep(delay, ctx.lifetime, true))) break;
        continue;
      }
      if (ctx.closing) break;
      slot.replacements++;
      ctx.options.events?.replaced?.({ slot: slot.index, transactionalId: slot.transactionalId, cause });
      this.release(slot);
      return;
    }
    await this.closeProducer(slot);
    ctx.slots.move(slot, 'closed');
  }

  /**
   * Being fenced again and again means another live process holds the same transactional id
   * (two instances configured with one instance id). Re-initialising at once would fence it back
   * and the two would take turns failing each other's transactions; so repeated fencing waits,
   * longer each time (up to a minute), and says loudly what is going on. Resolves false if the
   * pool closed meanwhile.
   */
  private async backOffFromFencingStorm(slot: Slot): Promise<boolean> {
    const { options, lifetime } = this.ctx;
    const now = Date.now();
    slot.fencedAt = [...slot.fencedAt.filter((t) => now - t < FENCING_STORM_WINDOW_MS), now];
    const recent = slot.fencedAt.length;
    if (recent < FENCING_STORM_THRESHOLD) return true;
    const delayMs = Math.min(60_000, options.replaceBackoffMs * 2 ** (recent - FENCING_STORM_THRESHOLD + 1));
    options.events?.fencingStorm?.({ slot: slot.index, transactionalId: slot.transactionalId, fencings: recent, delayMs });
    return sleep(delayMs, lifetime, true);
  }

  startHealthChecks(): void {
    this.healthTimer = setInterval(() => this.renewIdle(), this.ctx.options.healthCheckIntervalMs);
    this.healthTimer.unref();
  }

  stopHealthChecks(): void {
    if (this.healthTimer) clearInterval(this.healthTimer);
  }

  /**
   * Re-initialises slots that sat idle long enough to approach transactional.id.expiration.ms
   * (the coordinator forgets ids without status updates; a later init would then start a new
   * producer id silently). Re-init bumps the epoch and refreshes the id's timestamp.
   */
  private renewIdle(): void {
    const { ctx } = this;
    if (ctx.closing) return;
    const now = Date.now();
    for (const slot of ctx.slots.idle()) {
      if (now - slot.lastUsedAt >= ctx.options.refreshIdleAfterMs) this.replace(slot, 'refresh');
    }
  }
}
