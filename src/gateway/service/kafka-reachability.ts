/**
 * Whether a Kafka broker answered recently: one answer shared by /readyz and the transaction
 * route, so that a gateway that tells its load balancer "Kafka unreachable" also refuses new
 * transactions at once (503 TXGATE_KAFKA_UNAVAILABLE with Retry-After) instead of letting them
 * wait for a producer until the acquire timeout, or for a commit that cannot finish.
 *
 * A probe is one metadata request (any answer, "unknown topic" included, proves a broker
 * reachable). Probes run only when someone asks (a transaction or /readyz) and the last result is
 * older than `cacheMs` (`retryMs` while unreachable, so recovery is noticed quickly): an idle
 * gateway sends none, a busy one at most one per interval, and never two at a time. Requests
 * never wait for a probe; they use the last result.
 *
 * When a probe fails, `outage` aborts: requests still waiting (for a producer, a batch, or the
 * idempotency view) give up with that reason. They had written nothing, exactly as when their
 * client disconnects; transactions already started run to their end.
 */
import { KafkaUnavailableError } from '../../errors.js';

export type Reachability = { state: 'unknown' } | { state: 'reachable'; at: number } | { state: 'unreachable'; at: number; since: number; error: string };

export interface KafkaReachabilityOptions {
  /** How long a successful probe is trusted. */
  cacheMs?: number;
  /** How long a failed probe is trusted before the next one is tried (default: 1 s, or cacheMs if shorter). */
  retryMs?: number;
  /** Timeout of one probe. */
  timeoutMs?: number;
  now?: () => number;
}

export class KafkaReachability {
  readonly #ping: (timeoutMs: number) => Promise<void>;
  readonly #cacheMs: number;
  readonly #retryMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #last: Reachability = { state: 'unknown' };
  #probing: Promise<Reachability> | undefined;
  #outage = new AbortController();

  constructor(ping: (timeoutMs: number) => Promise<void>, opts: KafkaReachabilityOptions = {}) {
    this.#ping = ping;
    this.#cacheMs = opts.cacheMs ?? 2_000;
    this.#retryMs = opts.retryMs ?? Math.min(1_000, this.#cacheMs);
    this.#timeoutMs = opts.timeoutMs ?? 2_000;
    this.#now = opts.now ?? Date.now;
  }

  /** The last result, starting a probe in the background when it is stale. Never waits. */
  current(): Reachability {
    if (this.#stale()) void this.#probe();
    return this.#last;
  }

  /** A result no older than the cache allows, probing (and waiting for it) when needed. */
  async check(): Promise<Reachability> {
    return this.#stale() ? this.#probe() : this.#last;
  }

  /** Throws KafkaUnavailableError when the last probe failed (and starts a new one when due). */
  refuseIfUnreachable(): void {
    const r = this.current();
    if (r.state === 'unreachable') throw new KafkaUnavailableError(`no Kafka broker answered a metadata request since ${new Date(r.since).toISOString()} (${r.error})`);
  }

  /** Aborts, with a KafkaUnavailableError, when a probe fails; a fresh signal after each recovery. */
  get outage(): AbortSignal {
    return this.#outage.signal;
  }

  #stale(): boolean {
    const last = this.#last;
    if (last.state === 'unknown') return true;
    return this.#now() - last.at >= (last.state === 'reachable' ? this.#cacheMs : this.#retryMs);
  }

  #probe(): Promise<Reachability> {
    this.#probing ??= this.#ping(this.#timeoutMs)
      .then(
        (): Reachability => ({ state: 'reachable', at: this.#now() }),
        (err: unknown): Reachability => {
          const at = this.#now();
          const since = this.#last.state === 'unreachable' ? this.#last.since : at;
          return { state: 'unreachable', at, since, error: err instanceof Error ? err.message : String(err) };
        },
      )
      .then((r) => {
        const was = this.#last.state;
        this.#last = r;
        this.#probing = undefined;
        if (r.state === 'unreachable' && was !== 'unreachable') {
          this.#outage.abort(new KafkaUnavailableError(`Kafka became unreachable while this request waited (${r.error})`));
        } else if (r.state === 'reachable' && this.#outage.signal.aborted) {
          this.#outage = new AbortController();
        }
        return r;
      });
    return this.#probing;
  }
}
