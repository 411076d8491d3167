/**
 * Every failure of a request ends here as a problem document (error-mapping.ts says which), and
 * is logged at the level it deserves: 5xx as errors, load shedding as warnings.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayPart } from './context.js';
import { problemFromFrameworkError, problemFromRequestError } from './error-mapping.js';
import { PROBLEM_CONTENT_TYPE, type HttpProblem } from './problems.js';

/** The problem each reply was answered with, for the hooks that count them (the dashboard's errors by code). */
const answered = new WeakMap<FastifyReply, HttpProblem['code']>();
export const problemCodeOf = (reply: FastifyReply): HttpProblem['code'] | undefined => answered.get(reply);

export function sendProblem(reply: FastifyReply, problem: HttpProblem, request: FastifyRequest): FastifyReply {
  answered.set(reply, problem.code);
  for (const [name, value] of Object.entries(problem.headers)) reply.header(name, value);
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify(problem.toDocument(`urn:uuid:${request.id}`)));
}

/** Fastify's frameworkErrors option: its own refusals before routing are bare JSON otherwise. */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
  sendProblem(reply, problemFromFrameworkError(error), request);
}

export const registerErrorHandler: GatewayPart = (app) => {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const problem = problemFromRequestError(error, request);
    if (problem.status >= 500 && problem.status !== 503) {
      // The underlying error (with its cause chain) is for the operator; the client gets the problem only.
      request.log.error({ err: problem === error ? (problem.cause ?? error) : error, code: problem.code }, 'request failed');
    } else if (problem.code === 'TXGATE_NOT_READY') {
      // Probes and retrying clients ask while the gateway starts; start-up logs its own trouble.
      request.log.debug({ code: problem.code, reason: error.message }, 'request refused');
    } else if (problem.status === 503 || problem.status === 499) {
      request.log.warn({ code: problem.code, reason: error.message }, 'request refused');
    }
    return sendProblem(reply, problem, request);
  });
};
