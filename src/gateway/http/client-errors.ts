/**
 * The connection level: requests no route sees (refused by Node's HTTP parser, CONNECT, an
 * Expect header) still get a problem document, and a connection that closes after an answer
 * sent before the whole body arrived closes gently (lingering close), so the client reads it.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { ConnectionError, FastifyInstance } from 'fastify';
import type { GatewayLimits } from '../defaults.js';
import type { GatewayPart } from './context.js';
import { problemFromClientError } from './error-mapping.js';
import { HttpProblem, PROBLEM_CONTENT_TYPE } from './problems.js';

/** How often Node looks for connections past headersTimeoutMs/requestTimeoutMs (its default, 30 s, would add up to 30 s). */
export function checkingInterval(limits: GatewayLimits): number {
  return Math.max(10, Math.min(1_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));
}

export const registerConnectionGuards: GatewayPart = (app, { limits }) => {
  // Node answers an Expect other than 100-continue with a bare 417; RFC 9110 lets a server ignore it.
  app.server.on('checkExpectation', (req: IncomingMessage, res) => app.server.emit('request', req, res));
  // A CONNECT never reaches a route either: Node would drop the connection without an answer.
  app.server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    app.log.info({ code: 'TXGATE_INVALID_REQUEST', reason: 'CONNECT' }, 'request refused');
    answerOnSocket(socket, new HttpProblem('TXGATE_INVALID_REQUEST', 'CONNECT is not supported: the gateway is not a proxy'), limits.lingerMs);
  });

  app.addHook('onSend', async (request, reply) => {
    // Answered before the whole body arrived (413 by Content-Length, 401, 415...). Node reads and
    // discards the rest to keep the connection: fine for a body within the limit, but a larger or
    // unbounded (chunked) one is not worth reading; that connection ends after the response.
    if (request.raw.complete) return;
    const declared = Number(request.headers['content-length']);
    if (!(declared <= limits.maxBodyBytes)) reply.header('connection', 'close');
    // Whatever closes the connection after this response (that header, the client's own
    // "Connection: close", HTTP/1.0, shutdown), the rest of the body must not be left unread.
    lingerBeforeClosing(request.raw.socket, request.raw, limits.lingerMs);
  });
};

/**
 * Closing a socket while the client is still sending makes the kernel answer its data with a
 * reset, and a client that is busy writing (Node's http, curl...) then reports EPIPE/ECONNRESET
 * and drops the response already on its way. Like nginx's lingering close: once the response is
 * written, half-close, keep reading and discarding until the request has fully arrived (or the
 * client closes), and cut the connection after lingerMs at the latest.
 */
function lingerBeforeClosing(socket: Socket, request: IncomingMessage, lingerMs: number): void {
  // Node calls destroySoon() once a response that ends the connection has been written; on a
  // connection kept alive it is never called, and the next such request installs its own.
  socket.destroySoon = function lingeringDestroySoon(this: Socket) {
    if (request.complete) return Socket.prototype.destroySoon.call(this);
    this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs).unref();
    this.once('close', () => clearTimeout(timer));
    // The rest of the body was read and discarded (Node dumps an unread body): nothing is left
    // unread that could turn the close into a reset.
    request.once('end', () => (this.writableFinished ? this.destroy() : this.once('finish', () => this.destroy())));
  };
}

/** Sockets whose client error has been answered (Node reports each further chunk of an errored parser again). */
const clientErrorsAnswered = new WeakSet<Socket>();

/**
 * Fastify's clientErrorHandler: the answer to a request Node's HTTP parser refused before any
 * route saw it (malformed, headers too large, too slow). A problem document like every other
 * refusal, then a lingering close.
 */
export function answerClientError(error: ConnectionError, socket: Socket, limits: GatewayLimits, log: FastifyInstance['log'] | undefined): void {
  if (clientErrorsAnswered.has(socket)) return;
  clientErrorsAnswered.add(socket);
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || socket.destroyed) {
    socket.destroy();
    return;
  }
  const problem = problemFromClientError(error, limits);
  log?.info({ code: problem.code, reason: error.code }, 'request refused');
  // Node's own rule: nothing may follow a response that has started (its headers are out).
  if (!socket.writable || (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  answerOnSocket(socket, problem, limits.lingerMs);
}

/** Writes a problem response straight to a socket no route answers on, then closes it after a linger. */
function answerOnSocket(socket: Socket, problem: HttpProblem, lingerMs: number): void {
  const id = randomUUID();
  const body = JSON.stringify(problem.toDocument(`urn:uuid:${id}`));
  socket.end(
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? ''}\r\n` +
      `content-type: ${PROBLEM_CONTENT_TYPE}; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${id}\r\nconnection: close\r\n\r\n${body}`,
  );
  // Whatever the client still sends is read and dropped (by the failed parser, or here once no
  // parser is attached), so that closing does not reset the answer away; cut after lingerMs.
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), lingerMs).unref();
  socket.once('close', () => clearTimeout(timer));
}
