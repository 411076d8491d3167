/**
 * Group commit's spans. One request's trace, alone or batched:
 *
 *   POST /v1/transactions        SERVER, the HTTP layer's; its parent is the caller's traceparent
 *   ├─ txgate.group_commit.wait  from joining a batch until that batch's transaction starts (one per batch joined)
 *   │  └─ txgate.pool.acquire    the pool's, when every producer was busy (only under the batch's first member)
 *   └─ txgate.transaction        PRODUCER, one per Kafka transaction: in the first member's trace only
 *
 * Which is the child of which: a Kafka transaction serves several requests, each with its own
 * trace, and a span has one parent. The transaction span is the child of its first traced
 * member's request span (the one whose arrival opened the batch, unless it left or was sent back),
 * and it links to every other member's request span; each of those gets a link back, and every
 * member's request span gets the batch's id, size and transactional id as attributes. Under light
 * load, where a request runs alone, its whole story is one trace; a batched request's trace shows
 * its own wait, and links to the transaction it joined. (A root span per transaction would split
 * even the lone request's story across two traces and double the traces to sift through.)
 *
 * Spans are only made under a recording request span: without an SDK, or for a request not
 * sampled, this costs a context lookup per request.
 */
import { SpanKind, SpanStatusCode, context, trace, type Context, type Span } from '@opentelemetry/api';
import { TransactionOutcomeUnknownError } from '../../errors.js';

const TRACER_NAME = 'txgate';

/** A request's place in the traces: the span it was submitted under, and the wait it is in. */
export interface MemberTrace {
  readonly context: Context;
  readonly request: Span;
  wait: Span | undefined;
}

/** The recording span active where a request is submitted (the HTTP request's), or undefined. */
export function memberTrace(): MemberTrace | undefined {
  const ctx = context.active();
  const span = trace.getSpan(ctx);
  return span?.isRecording() ? { context: ctx, request: span, wait: undefined } : undefined;
}

/** The request joined batch `batchId` (`opened`: by being the first to want a producer). */
export function startWait(member: MemberTrace, batchId: number, opened: boolean): void {
  member.wait?.end();
  member.wait = trace
    .getTracer(TRACER_NAME)
    .startSpan('txgate.group_commit.wait', { attributes: { 'txgate.batch.id': batchId, 'txgate.batch.opened': opened } }, member.context);
}

/** The wait is over: its batch started (no error), or the request failed while waiting. */
export function endWait(member: MemberTrace | undefined, error?: unknown): void {
  const wait = member?.wait;
  if (!wait) return;
  member.wait = undefined;
  if (error !== undefined) markFailed(wait, error);
  wait.end();
}

/** Where a batch asks the pool for a producer: inside its first member's wait, so the pool's span nests there. */
export function waitContext(member: MemberTrace | undefined): Context | undefined {
  return member?.wait ? trace.setSpan(member.context, member.wait) : undefined;
}

export interface TransactionTraceInfo {
  batchId: number;
  records: number;
  bytes: number;
  transactionalId: string;
  slot: number;
}

/**
 * The batch's transaction has started (its producer's transaction is open): ends the members'
 * waits, starts the transaction span, and records on each member's request span which
 * transaction it joined. Returns undefined when no member is traced.
 */
export function startTransaction(members: ReadonlyArray<MemberTrace | undefined>, info: TransactionTraceInfo): Span | undefined {
  const traced = members.filter((m): m is MemberTrace => m !== undefined);
  const parent = traced[0];
  if (!parent) return undefined;
  const batch = { 'txgate.batch.id': info.batchId, 'txgate.batch.requests': members.length };
  const span = trace.getTracer(TRACER_NAME).startSpan(
    'txgate.transaction',
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'kafka',
        'messaging.operation.type': 'send',
        'messaging.batch.message_count': info.records,
        ...batch,
        'txgate.batch.bytes': info.bytes,
        'txgate.transactional_id': info.transactionalId,
        'txgate.producer.slot': info.slot,
      },
      links: traced.slice(1).map((m) => ({ context: m.request.spanContext() })),
    },
    parent.context,
  );
  for (const m of traced) {
    endWait(m);
    // A request sent back to run again (its batch-mate was refused) records its last batch, and
    // links to every transaction it was in.
    m.request.setAttributes({ ...batch, 'txgate.transactional_id': info.transactionalId });
    if (m !== parent) m.request.addLink({ context: span.spanContext(), attributes: { 'txgate.batch.id': info.batchId } });
  }
  return span;
}

export interface TransactionEnd {
  /** The pool's error when the transaction did not commit. */
  error?: unknown;
  /** Set when a refused request poisoned the batch: how many of its requests failed, and went back to run again. */
  poisoned?: { failed: number; retried: number };
}

export function endTransaction(span: Span | undefined, end: TransactionEnd = {}): void {
  if (!span) return;
  if (end.error === undefined) {
    span.setAttribute('txgate.transaction.outcome', 'committed');
  } else {
    span.setAttribute('txgate.transaction.outcome', end.error instanceof TransactionOutcomeUnknownError ? 'unknown' : 'aborted');
    if (end.poisoned) span.setAttributes({ 'txgate.batch.failed_requests': end.poisoned.failed, 'txgate.batch.retried_requests': end.poisoned.retried });
    span.recordException(end.error instanceof Error ? end.error : String(end.error));
    markFailed(span, end.error);
  }
  span.end();
}

function markFailed(span: Span, error: unknown): void {
  const code = (error as { code?: unknown } | undefined)?.code;
  span.setAttribute('error.type', typeof code === 'string' ? code : error instanceof Error ? error.name : 'Error');
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}
