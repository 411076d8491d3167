/**
 * The live dashboard: GET / and GET /dashboard serve a static page (its files under
 * dashboard/assets/), which polls GET /v1/stats once a second while it is visible. The page holds
 * no data of its own: with API keys on, /v1/stats needs a key like POST /v1/transactions does, and
 * the page asks for one before it shows anything. Polling rather than Server-Sent Events, because
 * EventSource cannot send an Authorization header, and a token in a URL ends up in proxies' logs.
 *
 * Its cost: one onResponse hook (a few counter increments per request) and one sample a second
 * (see recorder.ts); nothing more while nobody watches.
 */
import type { FastifyReply } from 'fastify';
import type { GatewayPart } from '../context.js';
import { problemCodeOf } from '../error-handler.js';
import { HttpProblem } from '../problems.js';
import { loadDashboardAssets, type Asset, type DashboardAssets } from './assets.js';
import { SAMPLE_INTERVAL_MS, StatsRecorder, type StatsSnapshot } from './recorder.js';

export const STATS_PATH = '/v1/stats';
const TRANSACTIONS_ROUTE = '/v1/transactions';

/**
 * Nothing but this gateway: no inline script, no other origin, no framing. uPlot styles its
 * elements through the CSSOM, which style-src does not restrict.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export type StatsResponse = StatsSnapshot & { version: string; auth: boolean };

export const registerDashboard: GatewayPart = (app, { deps, auth }) => {
  const recorder = new StatsRecorder({ service: () => deps.service.stats(), pool: deps.pool && (() => deps.pool!.stats()) });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url;
    if (route === TRANSACTIONS_ROUTE && request.method === 'POST') recorder.observeRequest(reply.elapsedTime, reply.statusCode);
    if (reply.statusCode >= 400) {
      const code = problemCodeOf(reply);
      if (code !== undefined) recorder.observeProblem(code, reply.statusCode, request.method, route ?? 'unmatched');
    }
    done();
  });

  // A figure that cannot be read must not take the gateway down: the timer has no caller to catch it.
  let warned = false;
  const sample = () => {
    try {
      recorder.sample();
    } catch (err) {
      if (!warned) app.log.warn({ err }, 'the dashboard could not sample the gateway\'s figures');
      warned = true;
    }
  };
  // unref: the sampler never keeps a process alive (tests build gateways they do not close).
  let timer: NodeJS.Timeout | undefined;
  app.addHook('onReady', (done) => {
    sample();
    timer = setInterval(sample, SAMPLE_INTERVAL_MS).unref();
    done();
  });
  app.addHook('onClose', (_app, done) => {
    clearInterval(timer);
    done();
  });

  app.get<{ Querystring: { since?: string } }>(
    STATS_PATH,
    {
      onRequest: async (request) => {
        if (auth.enabled) auth.authenticate(request.headers.authorization);
      },
    },
    async (request, reply): Promise<StatsResponse> => {
      const since = request.query.since;
      if (since !== undefined && !/^[0-9]{1,15}$/.test(since)) {
        throw new HttpProblem('TXGATE_INVALID_REQUEST', 'since must be the lastSeq of an earlier /v1/stats answer (a non-negative integer)');
      }
      reply.header('cache-control', 'no-store');
      return { version: deps.version ?? '0.0.0', auth: auth.enabled, ...recorder.snapshot(since === undefined ? undefined : Number(since)) };
    },
  );

  let assets: DashboardAssets | undefined;
  try {
    assets = loadDashboardAssets();
  } catch (err) {
    app.log.warn({ err }, 'the dashboard files are missing (reinstall txgate): GET /dashboard answers 500');
  }
  const send = (reply: FastifyReply, file: Asset | undefined, ifNoneMatch: string | undefined) => {
    if (!file) throw new HttpProblem('TXGATE_INTERNAL', 'the dashboard files are missing from this installation');
    reply.headers(PAGE_HEADERS).header('etag', file.etag);
    if (ifNoneMatch === file.etag) return reply.code(304).send();
    return reply.type(file.contentType).send(file.body);
  };
  for (const path of ['/', '/dashboard']) {
    app.get(path, async (request, reply) => send(reply, assets?.page, request.headers['if-none-match']));
  }
  app.get<{ Params: { name: string } }>('/dashboard/assets/:name', async (request, reply) => {
    if (assets && !assets.files.has(request.params.name)) {
      throw new HttpProblem('TXGATE_NOT_FOUND', `the dashboard has no file "${request.params.name}"`);
    }
    return send(reply, assets?.files.get(request.params.name), request.headers['if-none-match']);
  });
};
