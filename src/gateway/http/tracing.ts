/**
 * Tracing of POST /v1/transactions: the request's SERVER span, whose parent is the caller's W3C
 * `traceparent` / `tracestate`, and the trace context each record of the request carries as
 * headers of the same names, so that a consumer of the records continues the trace.
 *
 * Only @opentelemetry/api is used here. With no SDK registered (tracing not configured) its spans
 * are no-ops, yet an incoming traceparent still reaches the records: the no-op tracer hands back
 * the caller's own span context, so consumers join the caller's trace for the price of parsing
 * one header. A request without one gets no headers and no span work beyond a no-op object.
 *
 * The W3C header codec is a regex plus the API's TraceState rather than @opentelemetry/core's
 * propagator: that package would add about 11 ms to the start of every CLI command, traced or not.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  createTraceState,
  isSpanContextValid,
  trace,
  type Context,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
} from '@opentelemetry/semantic-conventions';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { OutgoingRecord } from '../../pool/producer-port.js';
import type { RecordLimits } from '../defaults.js';
import type { GatewayPart } from './context.js';
import { problemCodeOf } from './error-handler.js';
import { HttpProblem, type FieldError } from './problems.js';
import { pathOf } from './request-hooks.js';

/** The instrumentation scope of every txgate span (the pool's too). */
export const TRACER_NAME = 'txgate';
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** The one route traced: health checks and scrapes would only bury the transactions. */
const TRACED_ROUTE = '/v1/transactions';

/** W3C Trace Context: version-traceid-parentid-flags; a later version may append fields. */
const TRACEPARENT_FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The caller's span context from its traceparent and tracestate headers, or undefined when there
 * is none or it is malformed (then tracestate is ignored too, as the W3C specification requires).
 * Node joins a repeated traceparent with ", ", which makes it malformed: ignored, as it should be.
 */
export function parseTraceContext(traceparent: unknown, tracestate: unknown): SpanContext | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const m = TRACEPARENT_FORMAT.exec(traceparent.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const parent: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true };
  if (!isSpanContextValid(parent)) return undefined; // all-zero ids
  const state = Array.isArray(tracestate) ? tracestate.join(',') : tracestate;
  if (typeof state === 'string' && state.trim() !== '') parent.traceState = createTraceState(state);
  return parent;
}

/** The header values that carry `span` on: traceparent, and tracestate when it has members. */
export function formatTraceContext(span: SpanContext): { traceparent: string; tracestate?: string } | undefined {
  if (!isSpanContextValid(span)) return undefined;
  const traceparent = `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const tracestate = span.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

interface RequestTrace {
  span: Span;
  ended: boolean;
}

const traces = new WeakMap<FastifyRequest, RequestTrace>();

/** The span of a traced request (a no-op span when no SDK is registered), if the tracing part saw it. */
export function requestSpan(request: FastifyRequest): Span | undefined {
  return traces.get(request)?.span;
}

/**
 * Runs `fn` with the request's span active, so that what it calls (group commit, the pool) makes
 * its spans children of it. Only a recording span is worth the context switch.
 */
export function withRequestSpan<T>(span: Span | undefined, fn: () => T): T {
  return span?.isRecording() ? context.with(trace.setSpan(context.active(), span), fn) : fn();
}

/**
 * Registered first, so that the span covers every other hook (the wait behind pipelined
 * requests, the draining and start-up refusals) and every answer, 400s included.
 */
export const registerTracing: GatewayPart = (app) => {
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST' || request.routeOptions.url !== TRACED_ROUTE) return;
    const remote = parseTraceContext(request.headers[TRACEPARENT], request.headers[TRACESTATE]);
    const parent: Context = remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
    const span = trace.getTracer(TRACER_NAME).startSpan(`POST ${TRACED_ROUTE}`, { kind: SpanKind.SERVER }, parent);
    if (span.isRecording()) {
      span.setAttributes({
        [ATTR_HTTP_REQUEST_METHOD]: 'POST',
        [ATTR_HTTP_ROUTE]: TRACED_ROUTE,
        [ATTR_URL_PATH]: pathOf(request.url),
        [ATTR_URL_SCHEME]: request.protocol,
        [ATTR_CLIENT_ADDRESS]: request.ip,
      });
    } else if (!isSpanContextValid(span.spanContext())) {
      return; // no SDK and no traceparent: nothing to record and nothing to pass on
    }
    const state: RequestTrace = { span, ended: false };
    traces.set(request, state);
    // A reply taken over before it is sent (a pipelined request behind a closing answer) never
    // reaches onSend. A client that left while its transaction runs is answered (to nobody) once
    // the transaction ends: its span ends then, in onSend.
    reply.raw.once('close', () => {
      if (state.ended) return;
      if (!reply.raw.writableFinished) span.setAttribute('txgate.client_closed', true);
      if (reply.sent) endRequestSpan(state, reply);
    });
  });

  // The answer is final here, problem documents included; sending it adds microseconds.
  app.addHook('onSend', async (request, reply, payload) => {
    const state = traces.get(request);
    if (state && !state.ended) endRequestSpan(state, reply);
    return payload;
  });
};

function endRequestSpan(state: RequestTrace, reply: FastifyReply): void {
  state.ended = true;
  const { span } = state;
  const status = reply.statusCode;
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  const code = problemCodeOf(reply);
  if (code !== undefined) span.setAttribute(ATTR_ERROR_TYPE, code);
  // HTTP semantic conventions: a 4xx is the client's doing, not a failure of the server span.
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: code ?? String(status) });
  span.end();
}

/**
 * Gives each record the trace context of `span` (its request's) as `traceparent` and, when the
 * caller sent one, `tracestate` headers. A record whose body already names either header keeps
 * its own (the client's explicit choice, say the trace of whatever produced the data) and gets
 * neither. The added bytes count against the record size limit, since they count for Kafka's
 * message.max.bytes; they do not count against the headers-per-record limit, which bounds what
 * clients send. Returns how many records got the headers.
 */
export function addTraceHeaders(records: OutgoingRecord[], span: SpanContext, limits: Pick<RecordLimits, 'maxRecordBytes'>): number {
  const headers = formatTraceContext(span);
  if (!headers) return 0;
  const added = Object.entries(headers).reduce((n, [name, value]) => n + name.length + value.length, 0);
  const tooLarge: FieldError[] = [];
  let traced = 0;
  records.forEach((record, i) => {
    const own = record.headers;
    if (own && Object.keys(own).some(isTraceHeader)) return;
    const size = recordBytes(record) + added;
    if (size > limits.maxRecordBytes) {
      tooLarge.push({
        pointer: `/records/${i}`,
        detail: `${size} bytes of key, value and headers, ${added} of them the trace context headers the gateway adds (traceparent, tracestate); at most ${limits.maxRecordBytes} are allowed`,
      });
      return;
    }
    record.headers = { ...own, ...headers };
    traced++;
  });
  if (tooLarge.length > 0) {
    throw new HttpProblem('TXGATE_RECORD_TOO_LARGE', `record ${tooLarge[0]!.pointer} has ${tooLarge[0]!.detail}; store large payloads elsewhere and send a reference`, {
      extensions: { errors: tooLarge },
    });
  }
  return traced;
}

function isTraceHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === TRACEPARENT || lower === TRACESTATE;
}

function recordBytes(r: OutgoingRecord): number {
  let n = (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (const [k, v] of Object.entries(r.headers ?? {})) n += Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : v.length);
  return n;
}
