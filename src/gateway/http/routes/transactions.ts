/** POST /v1/transactions: one request, one TransactionService.submit(), one Kafka transaction. */
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth.js';
import type { GatewayPart } from '../context.js';
import { problemFromServiceError } from '../error-mapping.js';
import { requestFingerprint } from '../fingerprint.js';
import { IDEMPOTENCY_KEY_HEADER, parseIdempotencyKey, scopeIdempotencyKey } from '../idempotency-key.js';
import { checkTopicsExist, prepareRecords } from '../records.js';
import { TransactionCommittedSchema, TransactionRequestSchema, type TransactionCommitted, type TransactionRequest } from '../schemas.js';
import { addTraceHeaders, requestSpan, withRequestSpan } from '../tracing.js';

export const registerTransactionRoutes: GatewayPart = (app, { deps, limits, auth, reachability, isInternalTopic }) => {
  const principals = new WeakMap<FastifyRequest, Principal>();

  app.post<{ Body: TransactionRequest }>(
    '/v1/transactions',
    {
      schema: { body: TransactionRequestSchema, response: { 200: TransactionCommittedSchema } },
      onRequest: async (request) => {
        if (auth.enabled) principals.set(request, auth.authenticate(request.headers.authorization));
      },
    },
    async (request, reply): Promise<TransactionCommitted> => {
      const span = requestSpan(request);
      span?.setAttributes({ 'txgate.request.records': request.body.records.length, 'txgate.idempotency_key.present': request.headers[IDEMPOTENCY_KEY_HEADER] !== undefined });
      const key = parseIdempotencyKey(request.headers[IDEMPOTENCY_KEY_HEADER]);
      const principal = principals.get(request);
      const prepared = prepareRecords(request.body, { limits, principal, isInternalTopic });
      // After the body's own limits: the trace headers are the gateway's, added to records that
      // fit (the idempotency fingerprint is of the body, so they never change it).
      if (span) addTraceHeaders(prepared.records, span.spanContext(), limits);
      try {
        reachability.refuseIfUnreachable();
      } catch (err) {
        throw problemFromServiceError(err, { hadIdempotencyKey: key !== undefined });
      }
      checkTopicsExist(request.body, await deps.topics.lookup(prepared.topics));

      // The client went away: the service stops waiting for a producer (it never abandons a
      // transaction it has started).
      const gone = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) gone.abort(new Error('client closed the connection'));
      };
      reply.raw.once('close', onClose);
      try {
        // Under the request's span, so that group commit's spans (the wait, the transaction) hang off it.
        const result = await withRequestSpan(span, () =>
          deps.service.submit({
            records: prepared.records,
            ...(key !== undefined ? { idempotency: { key: scopeIdempotencyKey(key, principal?.name), fingerprint: requestFingerprint(request.body) } } : {}),
            // A wait also ends when Kafka turns unreachable: refused at once rather than at the acquire timeout.
            signal: AbortSignal.any([gone.signal, reachability.outage]),
          }),
        );
        if (result.replayed) {
          reply.header('idempotent-replayed', 'true');
          span?.setAttribute('txgate.idempotency_key.replayed', true);
        }
        return {
          status: 'committed',
          records: result.records.map((r) => ({ topic: r.topic, partition: r.partition, offset: String(r.offset) })),
        };
      } catch (err) {
        const problem = problemFromServiceError(err, { hadIdempotencyKey: key !== undefined });
        // A transaction that failed may have failed on a topic deleted meanwhile: look again next time.
        if (problem.code === 'TXGATE_TRANSACTION_ABORTED' || problem.code === 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN') deps.topics.forget(prepared.topics.keys());
        throw problem;
      } finally {
        reply.raw.off('close', onClose);
      }
    },
  );
};
