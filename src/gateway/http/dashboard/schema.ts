/**
 * The JSON Schema of GET /v1/stats, for the OpenAPI document (openapi.ts); the unit tests check
 * real answers against it, so it cannot drift from recorder.ts.
 */
import { Type, type TArray } from '@sinclair/typebox';
import { SERIES_NAMES, type SeriesName } from './recorder.js';

const Count = Type.Integer({ minimum: 0 });
const Millis = Type.Integer({ description: 'Milliseconds since the epoch.' });
const NullableNumber = Type.Union([Type.Number(), Type.Null()]);

const SERIES_HELP: Record<SeriesName, string> = {
  committed: 'Transactions committed per second.',
  aborted: 'Transactions aborted per second.',
  outcomeUnknown: 'Transactions whose commit outcome is unknown, per second.',
  requests: 'Requests committed per second.',
  httpRequests: 'POST /v1/transactions answered per second, any status.',
  httpErrors: 'POST /v1/transactions answered with 4xx or 5xx, per second.',
  requestsPerTransaction: 'Requests committed per transaction committed (group commit); null without commits.',
  p50Ms: 'Median latency of the POST /v1/transactions answered in the interval; null without any.',
  p99Ms: '99th percentile latency of the POST /v1/transactions answered in the interval; null without any.',
  waiting: 'Requests accepted and not yet answered, at the end of the interval.',
  busy: 'Producers in a transaction, at the end of the interval; null without a pool.',
  idempotencyKeys: 'Idempotency keys held, at the end of the interval.',
};

const SlotSchema = Type.Object({
  slot: Count,
  transactionalId: Type.String(),
  state: Type.Union(['starting', 'idle', 'busy', 'replacing', 'closed'].map((s) => Type.Literal(s))),
  stateSince: Millis,
  transactions: Count,
  replacements: Count,
});

export const StatsSchema = Type.Object(
  {
    version: Type.String(),
    auth: Type.Boolean({ description: 'Whether API keys are on (then this endpoint needs one).' }),
    startedAt: Type.Integer({ description: 'When the gateway process started recording (ms since the epoch): a new value means a restart.' }),
    now: Millis,
    intervalMs: Type.Integer({ description: 'The length of one interval of `series`.' }),
    pool: Type.Union([
      Type.Object({
        size: Count,
        idle: Count,
        busy: Count,
        replacing: Count,
        waiting: Type.Integer({ minimum: 0, description: 'Transactions (batches) waiting for a producer.' }),
        maxWaiting: Count,
        closed: Type.Boolean(),
        slots: Type.Array(SlotSchema),
      }),
      Type.Null(),
    ]),
    service: Type.Object({
      pendingRequests: Type.Integer({ minimum: 0, description: 'Requests accepted and not yet answered.' }),
      openBatches: Type.Integer({ minimum: 0, description: 'Batches waiting for a producer.' }),
      idempotencyKeys: Count,
    }),
    totals: Type.Object(
      {
        committed: Count,
        aborted: Count,
        outcomeUnknown: Count,
        retries: Count,
        replacements: Count,
        rejected: Count,
        transactions: Count,
        requests: Count,
        batchedRequests: Count,
        httpRequests: Count,
        httpErrors: Count,
      },
      { description: 'Since the gateway started: the counters /metrics exposes (txgate_pool_transactions_total, txgate_gateway_*_total).' },
    ),
    latency: Type.Object(
      { windowSeconds: Count, count: Count, p50Ms: NullableNumber, p99Ms: NullableNumber },
      { description: 'POST /v1/transactions latency over the last windowSeconds (log buckets: within about 5 %).' },
    ),
    series: Type.Object(
      {
        firstSeq: Type.Integer({ minimum: 1, description: 'Sequence number of the first interval listed.' }),
        lastSeq: Type.Integer({ minimum: 0, description: 'Of the newest interval: pass it as `since` to get only newer ones.' }),
        t: Type.Array(Millis, { description: 'When each interval ended.' }),
        ...(Object.fromEntries(SERIES_NAMES.map((name) => [name, Type.Array(NullableNumber, { description: SERIES_HELP[name] })])) as Record<
          SeriesName,
          TArray<typeof NullableNumber>
        >),
      },
      { description: 'Per-interval figures, oldest first, one array per series (the last 10 minutes at most).' },
    ),
    errors: Type.Array(
      Type.Object({
        code: Type.String(),
        type: Type.String({ description: "The problem's page (a relative reference), as in problem documents." }),
        status: Type.Integer(),
        count: Count,
        lastAt: Millis,
        method: Type.String(),
        route: Type.String({ description: 'The route template, or "unmatched".' }),
      }),
      { description: 'Problem codes answered since start, most recent first.' },
    ),
  },
  { description: 'Live figures for the dashboard. No topic names: codes, counts and transactional ids only.' },
);
