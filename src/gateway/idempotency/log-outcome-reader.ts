/**
 * The OutcomeReader on the idempotency log: one reader of its own, opened on first use, assigned
 * at the wanted offset for each read and unassigned after it. Reads run one at a time (a reader
 * has one assignment); concurrent reads of the same record share one.
 *
 * read_uncommitted on purpose: the key index holds only offsets of committed outcomes (read by
 * the read_committed reader, or our own after their commit), so the record at such an offset is
 * the committed one either way, and read_committed would wait behind any transaction still open
 * below it (up to transaction.timeout.ms) for nothing.
 */
import { AcquireAbortedError } from '../../errors.js';
import { IdempotencyUnavailableError } from '../../errors.js';
import type { OutcomeReader, StoredRecord } from './outcome-reader.js';
import type { IdempotencyLog, LogReader } from './ports.js';

/** How long one poll waits for the record: the read's deadline is checked between polls. */
const POLL_WAIT_MS = 100;

export interface LogOutcomeReaderOptions {
  log: IdempotencyLog;
  topic: string;
  /** Errors the reader's client reports by itself (it retries them). */
  onError?: ((err: unknown) => void) | undefined;
}

export class LogOutcomeReader implements OutcomeReader {
  private reader: LogReader | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly sharing = new Map<string, Promise<StoredRecord | undefined>>();
  private closed = false;

  constructor(private readonly opts: LogOutcomeReaderOptions) {}

  read(partition: number, offset: number, opts: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<StoredRecord | undefined> {
    if (opts.signal?.aborted) return Promise.reject(new AcquireAbortedError(opts.signal.reason));
    if (this.closed) return Promise.reject(new IdempotencyUnavailableError('the idempotency store is closed'));
    const id = `${partition}:${offset}`;
    let shared = this.sharing.get(id);
    if (!shared) {
      const deadline = Date.now() + opts.timeoutMs;
      shared = this.serially(() => this.readNow(partition, offset, deadline)).finally(() => this.sharing.delete(id));
      this.sharing.set(id, shared);
    }
    return abortable(shared, opts.signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain.catch(() => undefined);
    const reader = this.reader;
    this.reader = undefined;
    await reader?.close();
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.catch(() => undefined).then(work);
    this.chain = run;
    return run;
  }

  private async readNow(partition: number, offset: number, deadline: number): Promise<StoredRecord | undefined> {
    if (this.closed) throw new IdempotencyUnavailableError('the idempotency store is closed');
    const reader = await this.opened(deadline);
    reader.assign([{ partition, offset }]);
    try {
      let lastError: unknown;
      while (Date.now() < deadline && !this.closed) {
        let events;
        try {
          events = await reader.poll(1, POLL_WAIT_MS);
        } catch (err) {
          lastError = err;
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        for (const e of events) {
          if (e.partition !== partition) continue;
          // The first record at or after `offset`: a later one means the wanted one is gone (or
          // `offset` fell below the log start and the reader restarted from the earliest).
          if (e.kind === 'record') return e.offset === offset ? { offset, key: e.key, value: e.value } : undefined;
          // The partition's end reached with nothing at `offset`.
          if (e.offset <= offset) return undefined;
        }
      }
      throw new IdempotencyUnavailableError(
        `could not read the outcome at partition ${partition}, offset ${offset} of ${this.opts.topic} in time` +
          (lastError ? `: ${String(lastError)}` : ''),
      );
    } finally {
      reader.unassign();
    }
  }

  private async opened(deadline: number): Promise<LogReader> {
    if (this.reader) return this.reader;
    const reader = await this.opts.log
      .openReader({
        topic: this.opts.topic,
        isolation: 'read_uncommitted',
        use: 'lookup',
        timeoutMs: Math.max(1_000, deadline - Date.now()),
        onError: this.opts.onError,
      })
      .catch((err: unknown) => {
        throw new IdempotencyUnavailableError(`could not connect to Kafka to read an idempotency outcome: ${String(err)}`, { cause: err });
      });
    this.reader = reader;
    return reader;
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AcquireAbortedError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
