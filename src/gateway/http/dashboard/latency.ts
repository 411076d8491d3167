/**
 * Request latencies as counts in log-spaced buckets: recording one is a bucket increment (no
 * sorting, no list of samples), and percentiles come out within half a bucket, about 4.4 %.
 * Buckets are 2^(1/8) apart from 0.1 ms up to about 105 s; longer requests land in the last one.
 */

const MIN_MS = 0.1;
const STEPS_PER_DOUBLING = 8;
export const LATENCY_BUCKETS = 161;

/** The bucket a latency falls in: bucket i holds (MIN_MS * 2^((i-1)/8), MIN_MS * 2^(i/8)]. */
export function latencyBucket(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.ceil(Math.log2(ms / MIN_MS) * STEPS_PER_DOUBLING);
  return i < LATENCY_BUCKETS ? i : LATENCY_BUCKETS - 1;
}

/** A bucket's representative value: the geometric middle of its bounds (bucket 0: MIN_MS). */
export function bucketValueMs(i: number): number {
  if (i <= 0) return MIN_MS;
  // Three decimals are far finer than a bucket, and keep the JSON short.
  return Math.round(MIN_MS * 2 ** ((i - 0.5) / STEPS_PER_DOUBLING) * 1000) / 1000;
}

export function newLatencyCounts(): Uint32Array {
  return new Uint32Array(LATENCY_BUCKETS);
}

/** The q-quantile (0 < q <= 1) of the latencies counted in `counts`, or null when there are none. */
export function quantileMs(counts: Uint32Array, q: number, total = sum(counts)): number | null {
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return bucketValueMs(i);
  }
  return bucketValueMs(counts.length - 1);
}

export function sum(counts: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i]!;
  return n;
}
