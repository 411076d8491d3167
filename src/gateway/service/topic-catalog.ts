/**
 * Which topics exist and how many partitions they have, so a request naming a missing topic or
 * partition is answered 404 before a transaction is opened (librdkafka would otherwise wait for
 * the topic until message.timeout.ms and then abort the whole batch).
 *
 * Entries are cached for a short TTL. A miss (unknown topic, or a partition beyond the cached
 * count) asks Kafka again at once, so topics and partitions created a moment ago are found;
 * "does not exist" is itself remembered only briefly, which keeps a client hammering a wrong
 * name from turning every request into a metadata call. Concurrent lookups of the same topic
 * share one metadata request.
 */

/** Where partition counts come from (a port): Kafka's metadata in production (src/kafka/topic-metadata.ts), a map in unit tests. */
export interface TopicMetadataSource {
  /** Partition counts by topic; null for a topic that does not exist. Rejects when Kafka cannot be asked. */
  describe(topics: string[], timeoutMs: number): Promise<Map<string, number | null>>;
  /** Resolves when a broker answered a metadata request within the timeout. */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface TopicCatalogOptions {
  /** How long a known topic's partition count is trusted. */
  ttlMs?: number;
  /** How long "this topic does not exist" is trusted. */
  negativeTtlMs?: number;
  /**
   * Most "does not exist" answers kept (the oldest go first). Clients choose the names, so
   * without a bound every name ever asked for would stay in memory.
   */
  maxMissing?: number;
  /** Timeout of one metadata request. */
  timeoutMs?: number;
  now?: () => number;
}

interface Entry {
  partitions: number | null;
  expiresAt: number;
}

export class TopicCatalog {
  readonly #source: TopicMetadataSource;
  readonly #ttlMs: number;
  readonly #negativeTtlMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #maxMissing: number;
  /** Topics that exist: as many as the cluster has. */
  readonly #cache = new Map<string, Entry>();
  /** Names that do not exist, with when that answer expires; insertion order is age. */
  readonly #missing = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<number | null>>();

  constructor(source: TopicMetadataSource, opts: TopicCatalogOptions = {}) {
    this.#source = source;
    this.#ttlMs = opts.ttlMs ?? 30_000;
    this.#negativeTtlMs = opts.negativeTtlMs ?? 1_000;
    this.#timeoutMs = opts.timeoutMs ?? 5_000;
    this.#now = opts.now ?? Date.now;
    this.#maxMissing = opts.maxMissing ?? 10_000;
  }

  #cached(topic: string): Entry | undefined {
    const known = this.#cache.get(topic);
    if (known) return known;
    const expiresAt = this.#missing.get(topic);
    return expiresAt === undefined ? undefined : { partitions: null, expiresAt };
  }

  /**
   * Partition counts (null: no such topic) for every topic named in `wanted`, whose values are the
   * highest partition each request names (-1 when none). Refreshes what is stale or too small.
   */
  async lookup(wanted: Map<string, number>): Promise<Map<string, number | null>> {
    const now = this.#now();
    const result = new Map<string, number | null>();
    const pending: Array<Promise<void>> = [];
    const toFetch: string[] = [];
    for (const [topic, maxPartition] of wanted) {
      const entry = this.#cached(topic);
      const fresh = entry !== undefined && entry.expiresAt > now;
      const sufficient = entry !== undefined && (entry.partitions === null || entry.partitions > maxPartition);
      if (fresh && sufficient) {
        result.set(topic, entry.partitions);
        continue;
      }
      const inflight = this.#inflight.get(topic);
      if (inflight) pending.push(inflight.then((n) => void result.set(topic, n)));
      else toFetch.push(topic);
    }
    if (toFetch.length > 0) {
      const batch = this.#fetch(toFetch);
      for (const topic of toFetch) {
        const one = batch.then((m) => m.get(topic) ?? null);
        this.#inflight.set(topic, one);
        pending.push(one.then((n) => void result.set(topic, n)));
      }
      // Clear the in-flight markers whatever happens, without an unhandled rejection here.
      batch.then(
        () => toFetch.forEach((t) => this.#inflight.delete(t)),
        () => toFetch.forEach((t) => this.#inflight.delete(t)),
      );
    }
    await Promise.all(pending);
    return result;
  }

  async #fetch(topics: string[]): Promise<Map<string, number | null>> {
    let counts: Map<string, number | null>;
    try {
      counts = await this.#source.describe(topics, this.#timeoutMs);
    } catch (err) {
      throw err instanceof TopicMetadataError ? err : new TopicMetadataError(err instanceof Error ? err.message : String(err), undefined, { cause: err });
    }
    const now = this.#now();
    for (const topic of topics) {
      const partitions = counts.get(topic) ?? null;
      this.#missing.delete(topic);
      if (partitions !== null) {
        this.#cache.set(topic, { partitions, expiresAt: now + this.#ttlMs });
        continue;
      }
      this.#cache.delete(topic);
      this.#missing.set(topic, now + this.#negativeTtlMs);
      if (this.#missing.size > this.#maxMissing) this.#missing.delete(this.#missing.keys().next().value!);
    }
    return counts;
  }

  /**
   * Drops what is cached about `topics`, so that the next lookup asks Kafka. For topics whose
   * records just failed to be delivered: a topic deleted under load is then answered 404 at
   * once, instead of being accepted (and timing out) until its entry expires.
   */
  forget(topics: Iterable<string>): void {
    for (const topic of topics) {
      this.#cache.delete(topic);
      this.#missing.delete(topic);
    }
  }

  ping(timeoutMs: number): Promise<void> {
    return this.#source.ping(timeoutMs);
  }

  close(): Promise<void> {
    return this.#source.close();
  }
}

/** An error from the metadata client, with Kafka's code when there is one. */
export class TopicMetadataError extends Error {
  constructor(message: string, readonly kafkaCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TopicMetadataError';
  }
}
