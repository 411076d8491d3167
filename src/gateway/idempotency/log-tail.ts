/**
 * Follows the idempotency topic with one reader and feeds what it reads to the view: records to
 * `apply`, partition ends to the reader's cursor. A pull loop, so that nothing is being read
 * once it has stopped, and the reader can then be closed safely.
 */
import type { Logger } from './store.js';
import { LogReaderStoppedError, type LogReader } from './ports.js';
import type { Cursor, IdempotencyView } from './view.js';

/** Records taken per poll at most, and how long a poll waits for the first one. */
const POLL_RECORDS = 1000;
const POLL_WAIT_MS = 250;
/** A failing reader is polled again after this, and its failure logged at most this often. */
const RETRY_MS = 200;
const LOG_EVERY_MS = 10_000;

export interface TailOptions {
  reader: LogReader;
  view: IdempotencyView;
  cursor: Cursor;
  apply(partition: number, offset: number, key: string | undefined, value: Buffer | null): void;
  /** Checked between polls: the loop stops once it is true. */
  stopped(): boolean;
  logger: Logger;
  topic: string;
}

/** Resolves once the loop has stopped (after `stopped()` turned true, or the reader stopped for good). */
export function tailLog(opts: TailOptions): Promise<void> {
  const { reader, view, cursor, logger, topic } = opts;
  let lastLogged = 0;
  return (async () => {
    while (!opts.stopped()) {
      let events;
      try {
        events = await reader.poll(POLL_RECORDS, POLL_WAIT_MS);
      } catch (err) {
        if (opts.stopped()) return;
        if (err instanceof LogReaderStoppedError) {
          logger.error({ err: String(err), cursor, topic }, 'the idempotency consumer stopped');
          return;
        }
        if (Date.now() - lastLogged > LOG_EVERY_MS) {
          lastLogged = Date.now();
          logger.warn({ err: String(err), cursor, topic }, 'reading the idempotency topic failed; retrying');
        }
        await new Promise((r) => setTimeout(r, RETRY_MS));
        continue;
      }
      for (const e of events) {
        if (e.kind === 'record') opts.apply(e.partition, e.offset, e.key, e.value);
        else view.advance(cursor, e.partition, e.offset);
      }
    }
  })();
}
