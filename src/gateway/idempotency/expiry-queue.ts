/**
 * When each remembered outcome leaves the view: a binary min-heap on the expiry time, so a sweep
 * costs only the entries that are due, whatever the view holds (a full scan of millions of keys
 * would stall the event loop). Entries are never updated in place: the view skips the ones whose
 * key has since been replaced or deleted.
 */

export interface Expiry {
  /** Milliseconds since the epoch. */
  at: number;
  key: string;
  /** Offset of the outcome record this expiry belongs to. */
  offset: number;
}

export class ExpiryQueue {
  private readonly heap: Expiry[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(entry: Expiry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= entry.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  /** Removes and returns the soonest entry if it is due at `now`. */
  popDue(now: number): Expiry | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (!top || top.at > now) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left;
        if (heap[child]!.at >= last.at) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}
