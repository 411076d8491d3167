/**
 * Records the read_uncommitted reader delivered whose transaction may still be open: the ones the
 * committed cursor has not passed yet, unless we know their transaction aborted (our own). They
 * are what makes a second writer of a key wait for the first, so they are kept however old.
 */
export class UnresolvedRecords {
  /** Per partition and key, their offsets. */
  private readonly byKey = new Map<string, number[]>();
  /** The same, in offset order per partition, so passing them is cheap. */
  private readonly queue: Array<Array<{ offset: number; key: string }>>;
  private readonly head: number[];
  /** Offsets of our own records whose transaction we know was aborted. */
  private readonly knownAborted: Array<Set<number>>;

  constructor(partitions: number) {
    this.queue = Array.from({ length: partitions }, () => []);
    this.head = Array.from({ length: partitions }, () => 0);
    this.knownAborted = Array.from({ length: partitions }, () => new Set<number>());
  }

  of(partition: number, key: string): readonly number[] {
    return this.byKey.get(idOf(partition, key)) ?? [];
  }

  /** A record read uncommitted, not yet passed by the committed cursor. */
  add(partition: number, offset: number, key: string): void {
    if (this.knownAborted[partition]!.has(offset)) return;
    this.queue[partition]!.push({ offset, key });
    const id = idOf(partition, key);
    const offsets = this.byKey.get(id);
    if (offsets) offsets.push(offset);
    else this.byKey.set(id, [offset]);
  }

  /** Our transaction holding these records was aborted (offsets below `committedAt` are passed already). */
  markAborted(partition: number, offsets: Iterable<number>, committedAt: number): void {
    const aborted = this.knownAborted[partition]!;
    const fresh = new Set<number>();
    for (const offset of offsets) {
      if (offset < committedAt || aborted.has(offset)) continue;
      aborted.add(offset);
      fresh.add(offset);
    }
    if (fresh.size === 0) return;
    const q = this.queue[partition]!;
    for (let i = this.head[partition]!; i < q.length; i++) {
      const { offset, key } = q[i]!;
      if (fresh.has(offset)) this.drop(partition, key, offset);
    }
  }

  /**
   * The committed cursor reached `position`: the transactions of the records below it ended. If
   * one committed, the committed reader delivered the record itself; if it aborted, it was skipped.
   */
  pass(partition: number, position: number): void {
    const q = this.queue[partition]!;
    let head = this.head[partition]!;
    while (head < q.length && q[head]!.offset < position) {
      const { offset, key } = q[head]!;
      this.drop(partition, key, offset);
      head++;
    }
    if (head > 1024 && head * 2 > q.length) {
      q.splice(0, head);
      head = 0;
    }
    this.head[partition] = head;
    const aborted = this.knownAborted[partition]!;
    if (aborted.size > 0) for (const o of aborted) if (o < position) aborted.delete(o);
  }

  private drop(partition: number, key: string, offset: number): void {
    const id = idOf(partition, key);
    const list = this.byKey.get(id);
    if (!list) return;
    const kept = list.filter((o) => o !== offset);
    if (kept.length === 0) this.byKey.delete(id);
    else this.byKey.set(id, kept);
  }
}

function idOf(partition: number, key: string): string {
  return `${partition}\u0000${key}`;
}
