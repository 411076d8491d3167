/**
 * close(): stop lending, let running transactions finish within the deadline, force the ones
 * that do not, then close every producer.
 */
import { PoolClosedError } from '../errors.js';
import { sleep } from './backoff.js';
import type { PoolContext } from './context.js';
import type { Lending } from './lending.js';
import type { Replacement } from './replacement.js';

export async function shutdown(ctx: PoolContext, lending: Lending, replacement: Replacement, timeoutMs: number): Promise<void> {
  ctx.closing = true;
  replacement.stopHealthChecks();
  lending.rejectAll(new PoolClosedError('the pool is closing'));
  ctx.endLifetime();
  const deadline = new AbortController();
  const finished = await Promise.race([ctx.drain(), sleep(timeoutMs, deadline.signal).then(() => false)]);
  deadline.abort();
  if (!finished) {
    // Work that outlived the deadline is interrupted and its transaction aborted by its own
    // run(), so no producer call ever overlaps another. A commit or begin in progress stops
    // retrying and ends within its own timeout.
    for (const slot of ctx.slots.all) {
      if (slot.state === 'busy') slot.force.abort(new PoolClosedError('the pool closed before this transaction finished'));
    }
    await ctx.drain();
  }
  // Nothing is lent or being replaced any more: every slot is idle, closed, or never started.
  await replacement.closeAll();
}
