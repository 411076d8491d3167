/**
 * An in-memory model of one Kafka partition, with the transactional semantics the idempotency
 * protocol depends on, and nothing else:
 * - offsets are dense and totally ordered; a commit or abort writes a control marker (it takes an offset);
 * - a transaction's first offset holds the last stable offset (LSO) back while it is open;
 * - a read_uncommitted consumer reads up to the high watermark, every data record;
 * - a read_committed consumer reads up to the LSO, skips aborted records and markers, and reports
 *   "end of partition" (librdkafka's partition EOF) at the LSO.
 * Consumers move one record per step, so a test can interleave them with writers at will.
 * For tests that run real readers on it, a log tells its watchers when it changed, and records
 * can be removed as compaction or retention would.
 */
export interface LogRecord {
  offset: number;
  key?: string | undefined;
  value?: Buffer | undefined;
  /** The transaction that wrote it (undefined: not transactional). */
  txn?: number | undefined;
  /** A commit or abort marker. */
  control?: 'commit' | 'abort';
  /** Removed by compaction or retention: its offset stays taken, nobody reads it. */
  removed?: true;
}

type TxnState = 'open' | 'committed' | 'aborted';

export class MemoryPartitionLog {
  readonly records: LogRecord[] = [];
  private readonly txns = new Map<number, { state: TxnState; first: number | undefined }>();
  private nextTxn = 1;
  private readonly watchers = new Set<() => void>();

  get highWatermark(): number {
    return this.records.length;
  }

  get lastStableOffset(): number {
    let lso = this.highWatermark;
    for (const t of this.txns.values()) if (t.state === 'open' && t.first !== undefined) lso = Math.min(lso, t.first);
    return lso;
  }

  begin(): number {
    const id = this.nextTxn++;
    this.txns.set(id, { state: 'open', first: undefined });
    return id;
  }

  /** Appends a record in transaction `txn`; returns its offset. */
  append(txn: number, key: string, value: Buffer): number {
    const t = this.open(txn);
    const offset = this.records.length;
    t.first ??= offset;
    this.records.push({ offset, key, value, txn });
    this.changed();
    return offset;
  }

  /** Appends a record outside any transaction (a plain producer); returns its offset. */
  appendPlain(key: string, value: Buffer | undefined): number {
    const offset = this.records.length;
    this.records.push({ offset, key, value });
    this.changed();
    return offset;
  }

  /** Removes the record at `offset`, as compaction or retention would. */
  remove(offset: number): void {
    const r = this.records[offset];
    if (r) r.removed = true;
  }

  /** Calls `listener` after every write, commit and abort; returns what stops it. */
  watch(listener: () => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  commit(txn: number): void {
    this.end(txn, 'committed');
  }

  abort(txn: number): void {
    this.end(txn, 'aborted');
  }

  state(txn: number): TxnState | undefined {
    return this.txns.get(txn)?.state;
  }

  openTransactions(): number[] {
    return [...this.txns].filter(([, t]) => t.state === 'open').map(([id]) => id);
  }

  /** Whether a read_committed consumer delivers the record at `offset`. */
  committedVisible(offset: number): boolean {
    const r = this.records[offset];
    if (!r || r.control || r.removed) return false;
    return r.txn === undefined || this.txns.get(r.txn)?.state === 'committed';
  }

  private open(txn: number): { state: TxnState; first: number | undefined } {
    const t = this.txns.get(txn);
    if (!t || t.state !== 'open') throw new Error(`transaction ${txn} is not open`);
    return t;
  }

  private end(txn: number, state: 'committed' | 'aborted'): void {
    const t = this.open(txn);
    t.state = state;
    // A transaction that wrote nothing here has no marker on this partition.
    if (t.first !== undefined) this.records.push({ offset: this.records.length, txn, control: state === 'committed' ? 'commit' : 'abort' });
    this.changed();
  }

  private changed(): void {
    for (const w of this.watchers) w();
  }
}

export interface ConsumerSink {
  record(offset: number, key: string | undefined, value: Buffer | undefined): void;
  endOfPartition(offset: number): void;
}

/** A consumer of a MemoryPartitionLog from offset `from` (default 0), at one isolation level. */
export class MemoryConsumer {
  private position: number;
  private eofReported = -1;

  constructor(
    private readonly log: MemoryPartitionLog,
    readonly isolation: 'read_committed' | 'read_uncommitted',
    private readonly sink: ConsumerSink,
    from = 0,
  ) {
    this.position = from;
  }

  private get end(): number {
    return this.isolation === 'read_committed' ? this.log.lastStableOffset : this.log.highWatermark;
  }

  /** One record can be fetched (delivered, or skipped as aborted or a marker). */
  canFetch(): boolean {
    return this.position < this.end;
  }

  fetch(): void {
    const r = this.log.records[this.position];
    if (!r) throw new Error('nothing to fetch');
    this.position++;
    const deliver = this.isolation === 'read_uncommitted' ? !r.control && !r.removed : this.log.committedVisible(r.offset);
    if (deliver) this.sink.record(r.offset, r.key, r.value);
  }

  canReportEnd(): boolean {
    return this.position === this.end && this.eofReported !== this.position;
  }

  reportEnd(): void {
    this.eofReported = this.position;
    this.sink.endOfPartition(this.position);
  }
}
