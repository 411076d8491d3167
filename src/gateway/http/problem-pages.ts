/**
 * The pages a problem's `type` resolves to: GET /problems/<slug> explains one problem and what to
 * do about it, GET /problems lists them all. A `type` is a relative reference ("/problems/..."),
 * resolved against the request's URL as RFC 9457 allows, so it points at the gateway that sent
 * it and needs no domain of ours. Plain HTML, no scripts: it must work with no network.
 */
import type { FastifyInstance } from 'fastify';
import { PROBLEM_ENTRIES } from '../../error-catalogue.js';
import { HttpProblem, PROBLEMS, problemType, type ProblemCode } from './problems.js';

interface ProblemHelp {
  /** What it means and what to do. */
  help: string;
  /** Whether anything of the request was written: "no", "unknown", ... */
  written: string;
}

/** Per code, from the error catalogue; the README's error table says the same. */
export const PROBLEM_HELP: Readonly<Record<ProblemCode, ProblemHelp>> = Object.fromEntries(
  PROBLEM_ENTRIES.map(([code, { help, written }]) => [code, { help, written }]),
) as Record<ProblemCode, ProblemHelp>;

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
