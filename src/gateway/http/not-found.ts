/**
 * 404 for a path no route serves, 405 (with Allow) for one served under other methods. The
 * methods are collected from the routes as they are registered, so a new route needs no entry
 * here; register this part before the routes.
 */
import type { GatewayPart } from './context.js';
import { sendProblem } from './error-handler.js';
import { HttpProblem } from './problems.js';
import { pathOf } from './request-hooks.js';

export const registerNotFound: GatewayPart = (app) => {
  const methodsByPath = new Map<string, string[]>();
  app.addHook('onRoute', (route) => {
    // Parametric and wildcard routes answer 404 for other methods: only fixed paths name their methods.
    if (/[:*]/.test(route.url)) return;
    const methods = methodsByPath.get(route.url) ?? [];
    methods.push(...[route.method].flat());
    methodsByPath.set(route.url, methods);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request.url);
    const allow = methodsByPath.get(path)?.join(', ');
    const problem = allow
      ? new HttpProblem('TXGATE_METHOD_NOT_ALLOWED', `${path} takes ${allow}, not ${request.method}`, { headers: { allow } })
      : new HttpProblem('TXGATE_NOT_FOUND', `there is no ${request.method} ${path}; the API is described at GET /openapi.json`);
    return sendProblem(reply, problem, request);
  });
};
