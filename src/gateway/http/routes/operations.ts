/** What operators and tools ask: liveness, readiness, Prometheus metrics, the OpenAPI document. */
import type { GatewayPart } from '../context.js';
import { notReadyProblem } from '../error-mapping.js';
import { buildOpenApiDocument } from '../openapi.js';
import { readinessProbe } from '../readiness.js';

export const registerOperationsRoutes: GatewayPart = (app, ctx) => {
  const { deps, limits, auth, registry } = ctx;

  app.get('/healthz', async () => ({ status: 'ok' }));

  const readiness = readinessProbe(ctx);
  app.get('/readyz', async () => {
    const report = await readiness();
    if (report.ready) return { status: 'ready', checks: report.checks };
    throw notReadyProblem(report.checks);
  });

  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  const openapi = buildOpenApiDocument({ version: deps.version ?? '0.0.0', limits, authEnabled: auth.enabled });
  app.get('/openapi.json', async () => openapi);
};
