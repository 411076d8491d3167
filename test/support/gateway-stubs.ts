/**
 * Stand-ins for the gateway's HTTP layer tests: a TransactionService that answers at once, and
 * an in-memory topic metadata source.
 */
import { buildGateway, type GatewayDeps, type GatewayService } from '../../src/gateway/http/app.js';
import { TopicCatalog, type TopicMetadataSource } from '../../src/gateway/service/topic-catalog.js';
import type { OutgoingRecord } from '../../src/pool/producer-port.js';

export type SubmitArg = Parameters<GatewayService['submit']>[0];

/** A service that records each submit and answers with consecutive offsets (after `behaviour`, if given). */
export function stubService(behaviour?: (req: SubmitArg) => Promise<{ replayed?: boolean } | void>) {
  const calls: SubmitArg[] = [];
  let next = 0;
  const service: GatewayService = {
    async submit(req) {
      calls.push(req);
      const extra = (await behaviour?.(req)) ?? {};
      return {
        replayed: extra.replayed ?? false,
        records: req.records.map((r: OutgoingRecord) => ({ topic: r.topic, partition: r.partition ?? 0, offset: String(next++) })),
      };
    },
    stats: () => ({ pendingRequests: 0, openBatches: 0, transactions: 7, requests: 9, batchedRequests: 2, idempotencyKeys: 1 }),
  };
  return { service, calls };
}

/** Topic name to partition count (a missing name does not exist); `failing`: every call fails. */
export function memorySource(topics: Record<string, number>, opts: { failing?: boolean } = {}) {
  const asked: string[][] = [];
  const source: TopicMetadataSource = {
    async describe(names) {
      asked.push(names);
      if (opts.failing) throw new Error('broker down');
      return new Map(names.map((n) => [n, topics[n] ?? null]));
    },
    async ping() {
      if (opts.failing) throw new Error('broker down');
    },
    async close() {},
  };
  return { source, asked };
}

/** A gateway over the stub service and topics `orders` (3 partitions), `audit` (1) and the idempotency topic. */
export function stubGateway(over: Partial<GatewayDeps> = {}, topics: Record<string, number> = { orders: 3, audit: 1, 'txgate.idempotency': 1 }) {
  const { service, calls } = stubService();
  const deps: GatewayDeps = { service, topics: new TopicCatalog(memorySource(topics).source), ...over };
  return { app: buildGateway(deps), calls };
}
