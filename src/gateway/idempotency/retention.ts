/**
 * The retention of idempotency keys: how long the gateway answers a key, and the matching
 * settings of the idempotency topic (store.ts's header explains where expiry happens and the
 * assumption it rests on).
 */

/**
 * How much longer than the gateway the broker keeps the records. Kafka deletes by the record's
 * timestamp (the writing gateway's clock) against the broker's clock, while a gateway expires an
 * outcome by its committedAt (the writer's clock) against its own clock: the margin absorbs the
 * clock skew between the hosts, so the broker never deletes an outcome that a restarting gateway
 * would still have to answer (it would then run a retry again inside the window).
 */
export const RETENTION_MARGIN_MS = 60 * 60_000;

/**
 * The settings of the idempotency topic for a gateway retention: compacted (the latest record per
 * key) and deleted by time. segment.ms: the broker deletes whole segments, once their newest
 * record is past retention.ms, and by default a segment rolls only after 7 days (or 1 GiB);
 * rolling about 24 times per window lets old records go in steps of a few percent of it.
 * (Compaction may merge cleaned segments, which delays their deletion, never hastens it.)
 */
export function topicRetentionConfig(retentionMs: number): Record<'cleanup.policy' | 'retention.ms' | 'segment.ms', string> {
  const topicRetentionMs = retentionMs + RETENTION_MARGIN_MS;
  const segmentMs = Math.min(7 * 24 * 60 * 60_000, Math.max(10 * 60_000, Math.ceil(topicRetentionMs / 24)));
  return { 'cleanup.policy': 'compact,delete', 'retention.ms': String(topicRetentionMs), 'segment.ms': String(segmentMs) };
}
