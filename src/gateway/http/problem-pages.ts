/**
 * The pages a problem's `type` resolves to: GET /problems/<slug> explains one problem and what to
 * do about it, GET /problems lists them all. A `type` is a relative reference ("/problems/..."),
 * resolved against the request's URL as RFC 9457 allows, so it points at the gateway that sent
 * it and needs no domain of ours. Plain HTML, no scripts: it must work with no network.
 */
import type { FastifyInstance } from 'fastify';
import { HttpProblem, PROBLEMS, problemType, type ProblemCode } from './problems.js';

interface ProblemHelp {
  /** What it means and what to do. */
  help: string;
  /** Whether anything of the request was written: "no", "unknown", ... */
  written: string;
}

/** The README's error table says the same, per code. */
export const PROBLEM_HELP: Record<ProblemCode, ProblemHelp> = {
  TXGATE_INVALID_REQUEST: { help: "The body does not match the schema, or holds a number a double cannot hold exactly or a key or header with an unpaired surrogate; errors points at each field. Or the HTTP request itself is malformed (see Hostile input). Fix and resend.", written: "no" },
  TXGATE_INVALID_JSON: { help: "The body is not JSON, not UTF-8, uses a __proto__ or constructor.prototype key, or is empty.", written: "no" },
  TXGATE_VALUE_TOO_DEEP: { help: "A record's JSON value nests more than 1000 levels (send it as valueBase64).", written: "no" },
  TXGATE_INVALID_IDEMPOTENCY_KEY: { help: "The key is empty, longer than 255, or not printable ASCII.", written: "no" },
  TXGATE_UNAUTHORIZED: { help: "No, malformed, or unknown bearer token.", written: "no" },
  TXGATE_TOPIC_FORBIDDEN: { help: "A topic is outside the API key's allowlist.", written: "no" },
  TXGATE_INTERNAL_TOPIC: { help: "The idempotency topic or a __* topic.", written: "no" },
  TXGATE_UNKNOWN_TOPIC: { help: "A topic does not exist; create it first.", written: "no" },
  TXGATE_UNKNOWN_PARTITION: { help: "The topic has fewer partitions; omit partition or pick one that exists.", written: "no" },
  TXGATE_NOT_FOUND: { help: "No such endpoint (or page); the API is described at GET /openapi.json.", written: "no" },
  TXGATE_METHOD_NOT_ALLOWED: { help: "The endpoint exists but takes another method (see Allow).", written: "no" },
  TXGATE_REQUEST_TIMEOUT: { help: "The headers or the whole request did not arrive within --headers-timeout-ms / --request-timeout-ms; the connection is closed.", written: "no" },
  TXGATE_IDEMPOTENCY_IN_FLIGHT: { help: "The first request with this key is still running; retry later with the same key to get its outcome.", written: "not by this request" },
  TXGATE_BODY_TOO_LARGE: { help: "The body is over --max-body-bytes; split the records.", written: "no" },
  TXGATE_TOO_MANY_RECORDS: { help: "More than --max-records records.", written: "no" },
  TXGATE_RECORD_TOO_LARGE: { help: "A record is over --max-record-bytes, or Kafka refused it as too large (kafkaCodeName: MSG_SIZE_TOO_LARGE).", written: "no" },
  TXGATE_TOO_MANY_HEADERS: { help: "A record has more than --max-headers headers.", written: "no" },
  TXGATE_UNSUPPORTED_MEDIA_TYPE: { help: "Send Content-Type: application/json.", written: "no" },
  TXGATE_IDEMPOTENCY_MISMATCH: { help: "The key was used before with a different body; use a new key for a new request.", written: "no" },
  TXGATE_RECORD_REJECTED: { help: "Kafka refused one of this request's records (kafkaCode, kafkaCodeName, pointer in errors); fix the record. Requests that shared its transaction are unaffected.", written: "no" },
  TXGATE_HEADERS_TOO_LARGE: { help: "The request line and headers are over 16 KiB.", written: "no" },
  TXGATE_CLIENT_CLOSED_REQUEST: { help: "(Logs and metrics only: the client disconnected while waiting for a producer; no one receives it.)", written: "no" },
  TXGATE_TRANSACTION_ABORTED: { help: "The transaction was aborted; nothing is visible. Retrying is safe.", written: "no" },
  TXGATE_INTERNAL: { help: "Unexpected; logged with the request id. Retry with the same Idempotency-Key to learn the outcome.", written: "unknown" },
  TXGATE_POOL_SATURATED: { help: "Every producer is busy and the wait queue is full. Retry-After says when to retry.", written: "no" },
  TXGATE_ACQUIRE_TIMEOUT: { help: "No producer became free within --acquire-timeout-ms. Retry-After.", written: "no" },
  TXGATE_SHUTTING_DOWN: { help: "The gateway is draining; retry on another instance. Retry-After.", written: "no" },
  TXGATE_IDEMPOTENCY_UNAVAILABLE: { help: "The key's history could not be confirmed in time. Retry-After.", written: "no" },
  TXGATE_KAFKA_UNAVAILABLE: { help: "No Kafka broker answered the gateway's last metadata request (the same check as /readyz), or topic metadata could not be read: refused at once. Retry-After.", written: "no" },
  TXGATE_NOT_READY: { help: "(/readyz, and transactions while starting) not ready; checks says why. Retry-After.", written: "no" },
  TXGATE_TRANSACTION_OUTCOME_UNKNOWN: { help: "The commit's outcome is unknown: the records may or may not be visible. Retry with the **same Idempotency-Key and body** to learn the outcome (they are written at most once). Without a key, check the topic before retrying.", written: "unknown" },
};

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function page(title: string, body: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${escape(title)}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}` +
    `code{background:#f3f3f3;padding:0 .2em}td,th{text-align:left;vertical-align:top;padding:.3em .6em .3em 0}</style></head>` +
    `<body>${body}</body></html>`
  );
}

function problemPage(code: ProblemCode): string {
  const kind = PROBLEMS[code];
  const { help, written } = PROBLEM_HELP[code];
  return page(
    kind.title,
    `<p><a href="/problems">All problems</a></p><h1>${escape(kind.title)}</h1>` +
      `<p>HTTP status <strong>${kind.status}</strong>, code <code>${code}</code>.</p>` +
      `<p>${escape(help)}</p><p>Was anything of the request written? <strong>${escape(written)}</strong>.</p>`,
  );
}

function indexPage(): string {
  const rows = (Object.keys(PROBLEMS) as ProblemCode[])
    .map((code) => `<tr><td>${PROBLEMS[code].status}</td><td><a href="${problemType(code)}"><code>${code}</code></a></td><td>${escape(PROBLEMS[code].title)}</td></tr>`)
    .join('');
  return page('txgate problems', `<h1>Problems the gateway answers with</h1><table><tr><th>Status</th><th>Code</th><th>Title</th></tr>${rows}</table>`);
}

const bySlug = new Map<string, ProblemCode>((Object.keys(PROBLEMS) as ProblemCode[]).map((code) => [PROBLEMS[code].slug, code]));

/** GET /problems and GET /problems/:slug (an unknown slug is the 404 problem). */
export function registerProblemPages(app: FastifyInstance): void {
  app.get('/problems', async (_request, reply) => reply.type('text/html; charset=utf-8').send(indexPage()));
  app.get<{ Params: { slug: string } }>('/problems/:slug', async (request, reply) => {
    const code = bySlug.get(request.params.slug);
    if (!code) throw new HttpProblem('TXGATE_NOT_FOUND', `there is no problem type "${request.params.slug}"; GET /problems lists them`);
    return reply.type('text/html; charset=utf-8').send(problemPage(code));
  });
}
