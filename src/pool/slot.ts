/**
 * A slot (one stable transactional id and the producer holding it now) and its lifecycle, as an
 * explicit state machine. Every state change goes through SlotTable.move(), which refuses a
 * transition the table below does not list and, in the same step, keeps what depends on the
 * state: the idle list the pool lends from and the per-state counts stats() reports. As in
 * tarn.js, where a resource's state is the list it is in, the two cannot drift apart.
 *
 *   starting ──> idle <──> busy
 *      │          ↑ │       │
 *      │          │ ↓       │
 *      │       replacing <──┘
 *      ↓          │
 *   closed <──────┘   (and idle ──> closed, when the pool closes)
 */
import { TxGateError } from '../errors.js';
import type { TransactionalProducer } from './producer-port.js';
import type { SlotState } from './types.js';

/** Every legal transition, by the state it leaves. Nothing else may change a slot's state. */
export const SLOT_TRANSITIONS: Readonly<Record<SlotState, readonly SlotState[]>> = {
  // start(): every producer initialised; or the pool failed to start, or was closed first.
  starting: ['idle', 'closed'],
  // Lent to a caller; renewed before its id can expire; the pool closed.
  idle: ['busy', 'replacing', 'closed'],
  // The transaction ended and the producer is trustworthy; or it is not. Never straight to
  // closed: close() waits for every lent slot to come back first.
  busy: ['idle', 'replacing'],
  // The new producer initialised; or the pool closed before it could.
  replacing: ['idle', 'closed'],
  closed: [],
};

export function isLegalTransition(from: SlotState, to: SlotState): boolean {
  return SLOT_TRANSITIONS[from].includes(to);
}

/** A bug in the pool, never a Kafka condition: a slot was asked to make a move the table forbids. */
export class SlotInvariantError extends TxGateError {
  constructor(
    readonly slot: number,
    readonly from: SlotState,
    readonly to: SlotState,
  ) {
    super('TXGATE_INTERNAL_INVARIANT', `slot ${slot}: illegal state transition ${from} -> ${to}`);
  }
}

export interface Slot {
  readonly index: number;
  readonly transactionalId: string;
  /** Changed only by SlotTable.move(). */
  readonly state: SlotState;
  /** When the slot entered its state (ms since the epoch); set by move(). */
  readonly stateSince: number;
  producer: TransactionalProducer | undefined;
  transactions: number;
  replacements: number;
  lastUsedAt: number;
  lastError: string | undefined;
  /**
   * One per lending. close() aborts it at its deadline: the transaction must end now, by abort,
   * whatever phase it is in (retrying begin, inside the caller's work, committing).
   */
  force: AbortController;
  /** When this slot was last fenced (most recent last), to tell a fencing storm from a one-off. */
  fencedAt: number[];
}

export class SlotTable {
  readonly all: readonly Slot[];
  /** The idle slots, longest idle first: lending takes from the front, so every id gets used. */
  private readonly idleList: Slot[] = [];
  private readonly counts: Record<SlotState, number>;

  constructor(transactionalIds: readonly string[]) {
    this.all = transactionalIds.map((transactionalId, index) => ({
      index,
      transactionalId,
      producer: undefined,
      state: 'starting',
      stateSince: Date.now(),
      transactions: 0,
      replacements: 0,
      lastUsedAt: Date.now(),
      lastError: undefined,
      force: new AbortController(),
      fencedAt: [],
    }));
    this.counts = { starting: this.all.length, idle: 0, busy: 0, replacing: 0, closed: 0 };
  }

  /** The one way to change a slot's state. Throws SlotInvariantError on an illegal transition. */
  move(slot: Slot, to: SlotState): void {
    const from = slot.state;
    if (!isLegalTransition(from, to)) throw new SlotInvariantError(slot.index, from, to);
    if (from === 'idle') this.idleList.splice(this.idleList.indexOf(slot), 1);
    if (to === 'idle') this.idleList.push(slot);
    this.counts[from]--;
    this.counts[to]++;
    (slot as { state: SlotState }).state = to;
    (slot as { stateSince: number }).stateSince = Date.now();
  }

  /** Lends the slot idle longest (idle -> busy), if there is one. */
  takeIdle(): Slot | undefined {
    const slot = this.idleList[0];
    if (slot) this.move(slot, 'busy');
    return slot;
  }

  /** A snapshot of the idle slots, longest idle first: moving one does not disturb a loop over it. */
  idle(): Slot[] {
    return [...this.idleList];
  }

  count(state: SlotState): number {
    return this.counts[state];
  }

  /** Moves every slot not yet closed to closed. */
  closeAll(): void {
    for (const slot of this.all) if (slot.state !== 'closed') this.move(slot, 'closed');
  }

  /**
   * Where the idle list or the counts disagree with the slots' states; empty when they agree.
   * move() keeps them in step, so anything here is a bug (the tests call it after every step).
   */
  audit(): string[] {
    const problems: string[] = [];
    for (const state of Object.keys(this.counts) as SlotState[]) {
      const actual = this.all.filter((s) => s.state === state).length;
      if (this.counts[state] !== actual) problems.push(`${state}: counted ${this.counts[state]}, actually ${actual}`);
    }
    const listed = this.idleList.map((s) => s.index).sort((a, b) => a - b);
    const idle = this.all.filter((s) => s.state === 'idle').map((s) => s.index);
    if (listed.join() !== idle.join() || new Set(listed).size !== listed.length) {
      problems.push(`idle list [${listed.join()}] but idle slots [${idle.join()}]`);
    }
    return problems;
  }
}
