/**
 * The unit of work every mode performs, so they all write the same records: one transaction of
 * R records of 256 B to the bench topic. Also how errors are grouped into kinds for the report.
 */
import { randomUUID } from 'node:crypto';
import type { OutgoingRecord } from '../../src/index.js';
import { ConfluentTransactionalProducer } from '../../src/kafka/confluent-producer.js';

export const VALUE_BYTES = 256;
const VALUE = Buffer.alloc(VALUE_BYTES, 'x');
const VALUE_BASE64 = VALUE.toString('base64');

export function records(topic: string, count: number, tag: string): OutgoingRecord[] {
  return Array.from({ length: count }, (_, r) => ({ topic, key: Buffer.from(`${tag}.${r}`), value: VALUE }));
}

/**
 * Bodies sent in turn by the HTTP modes: request i carries keys k.i.0 .. k.i.(R-1), so that, as in
 * the library and Java modes (whose keys are unique), records spread over the topic's partitions
 * instead of all landing on the one partition a fixed key hashes to.
 */
export const BODY_VARIANTS = Number(process.env.BENCH_BODY_VARIANTS ?? 64); // 1: every request the same keys (one partition)

/** The gateway's request body (and the HTTP ceiling's, and the seed server's): R records of 256 B, keyed k.variant.r. */
export function gatewayBody(topic: string, count: number, variant = 0): string {
  const one = (r: number) => `{"topic":"${topic}","key":"k.${variant}.${r}","valueBase64":"${VALUE_BASE64}"}`;
  return `{"records":[${Array.from({ length: count }, (_, r) => one(r)).join(',')}]}`;
}

/** The Strimzi bridge's binary embedded format carries the same 256 B values and keys. */
export function bridgeBody(count: number, variant = 0): string {
  const one = (r: number) => `{"key":"${Buffer.from(`k.${variant}.${r}`).toString('base64')}","value":"${VALUE_BASE64}"}`;
  return `{"records":[${Array.from({ length: count }, (_, r) => one(r)).join(',')}]}`;
}

/** BODY_VARIANTS bodies, for LoadgenSpec.body. */
export const bodyVariants = (body: (variant: number) => string): string[] => Array.from({ length: BODY_VARIANTS }, (_, v) => body(v));

/**
 * The seed's design: a producer with a random transactional.id per transaction, initialised,
 * used once and closed. Every call leaves one more id on the coordinator.
 */
export async function seedTransaction(bootstrap: string, prefix: string, batch: OutgoingRecord[]): Promise<void> {
  const producer = new ConfluentTransactionalProducer(`${prefix}-${randomUUID()}`, { 'bootstrap.servers': bootstrap });
  try {
    await producer.init(30_000);
    await producer.begin();
    await Promise.all(batch.map((r) => producer.send(r)));
    await producer.commit(30_000);
  } finally {
    await producer.close(5_000);
  }
}

/** What one measured run reports, as one JSON line: bench/lib/loadgen.ts over HTTP, bench/lib/library.ts in process. */
/** The measured window in wall-clock milliseconds (Date.now()), as the load generators report it. */
export interface WallWindow {
  startMs: number;
  endMs: number;
}

export interface RunResult {
  /** Length of the measured window (after the warm-up). */
  seconds: number;
  /** The window in wall-clock ms, so the harness can read the CPU used within it. */
  window?: WallWindow;
  /** 2xx answers (committed transactions) received within the window. */
  ok: number;
  /** Failures by kind within the window: non-2xx answers by status, transport errors and timeouts (loadgen); errorKind() (library). */
  errors: Record<string, number>;
  /** Latency of the answers received within the window, ms. */
  p50: number;
  p99: number;
  p999: number;
  /** Requests (transactions) started within the window. */
  sent?: number;
  /**
   * Started and not answered when the window closed: neither in ok nor in errors. A closed loop
   * always has about one per connection; their age (unfinishedOldestMs) tells a stuck point.
   */
  unfinished?: number;
  unfinishedOldestMs?: number;
  /** Started during the whole run (warm-up included) and never answered: timeouts, dropped connections, still waiting when the drain gave up. */
  neverAnswered?: number;
  /** Connections (callers) that got no answer at all within the window. */
  silent?: number;
  /** Seconds of the same load before the window, on the same connections (discarded), and the answers it got. */
  warmupSeconds?: number;
  warmupAnswers?: number;
  /** Connections still without any answer when the warm-up reached its cap. */
  coldAtWindow?: number;
}

/**
 * One producer shared by every concurrent caller, each running begin / send / commit as if it
 * were alone. librdkafka refuses a second begin while a transaction is open, and a send from a
 * caller whose begin failed would silently join another caller's transaction, so a failed begin
 * sends nothing: the errors counted are the cost; no record lands in a foreign transaction.
 */
export async function sharedTransaction(producer: ConfluentTransactionalProducer, batch: OutgoingRecord[]): Promise<void> {
  await producer.begin();
  try {
    await Promise.all(batch.map((r) => producer.send(r)));
    await producer.commit(30_000);
  } catch (error) {
    await producer.abort(30_000).catch(() => {});
    throw error;
  }
}

export function errorKind(error: unknown): string {
  if (error && typeof error === 'object') {
    const e = error as { name?: string; code?: unknown; codeName?: string; message?: string };
    if (e.codeName) return e.codeName;
    if (e.code !== undefined) return `${e.name ?? 'Error'} ${String(e.code)}`;
    return e.name ?? 'Error';
  }
  return String(error);
}

export { percentile } from './stats.js';
