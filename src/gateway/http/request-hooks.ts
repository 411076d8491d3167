/**
 * What happens around every request: pipelined requests are served one at a time, an HTTP/1.1
 * request needs one Host, transactions are refused while draining or starting, and each answer
 * is counted and logged.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { GatewayPart } from './context.js';
import { drainingProblem, startingProblem } from './error-mapping.js';
import { HttpProblem } from './problems.js';
import { startupPending } from './readiness.js';

export const registerRequestHooks: GatewayPart = (app, { state, httpMetrics }) => {
  app.addHook('onRequest', async (request, reply) => {
    // Node starts every request of a pipeline at once. A request waits for the answers ahead of
    // it instead (RFC 9112, 9.3.2: only safe methods may run in parallel), and behind an answer
    // that closes the connection, or once the client is gone, it is not served at all (9.6).
    const socket = request.raw.socket;
    await answersAhead(socket, reply.raw);
    if (socket.destroyed || socket.writableEnded) {
      reply.hijack();
      return;
    }
    reply.header('x-request-id', request.id);
    // RFC 9112, 3.2: an HTTP/1.1 request has exactly one Host (Node keeps the first of several).
    if (request.raw.httpVersion === '1.1' && hostHeaders(request.raw.rawHeaders) !== 1) {
      throw new HttpProblem('TXGATE_INVALID_REQUEST', 'an HTTP/1.1 request needs exactly one Host header');
    }
    if (!request.url.startsWith('/v1/')) return;
    if (state.draining) throw drainingProblem();
    const starting = startupPending(state);
    if (starting) throw startingProblem(starting.step);
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpMetrics.observe(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    // The path only: a query string is the client's and may carry anything, a misplaced secret included.
    const url = pathOf(request.url);
    if (reply.statusCode >= 400 && reply.statusCode < 500) {
      request.log.info({ method: request.method, url, status: reply.statusCode }, 'request refused');
    } else {
      request.log.debug({ method: request.method, url, status: reply.statusCode, ms: reply.elapsedTime }, 'request completed');
    }
  });
};

/** The path of a request URL, without its query string. */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * Resolves once no response queued before `own` is left on the connection. `_httpMessage` is the
 * response the socket is writing now; Node's own server code keeps it there for that purpose.
 */
async function answersAhead(socket: Socket, own: ServerResponse): Promise<void> {
  for (;;) {
    const ahead = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!ahead || ahead === own || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        ahead.off('close', done);
        socket.off('close', done);
        resolve();
      };
      ahead.once('close', done);
      socket.once('close', done);
    });
  }
}

function hostHeaders(rawHeaders: string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === 4 && rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}
