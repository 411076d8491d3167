/**
 * The gateway's own Prometheus metrics: HTTP requests by route and status, and the
 * TransactionService's stats read at scrape time. Pool metrics are registered on the same
 * registry by src/pool/metrics.ts (see server.ts).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { TransactionServiceStats as ServiceStats } from '../service/transaction-service.js';

export type { ServiceStats };

export interface HttpMetrics {
  observe(method: string, route: string, status: number, durationSeconds: number): void;
}

export function registerHttpMetrics(registry: Registry): HttpMetrics {
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: 'txgate_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'txgate_http_request_duration_seconds',
    help: 'Time from receiving an HTTP request to sending its response',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    observe(method, route, status, durationSeconds) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      duration.observe(labels, durationSeconds);
    },
  };
}

/** A counter whose value is a cumulative total kept elsewhere, read when Prometheus scrapes. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      const v = read();
      if (v > 0) this.inc(v);
    },
  });
}

function readGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

export function registerServiceMetrics(registry: Registry, stats: () => ServiceStats): void {
  // One stats() call per scrape would be nicer, but each collect() runs independently; stats() is cheap.
  readGauge(registry, 'txgate_gateway_pending_requests', 'Requests waiting to be packed into a transaction', () => stats().pendingRequests);
  readGauge(registry, 'txgate_gateway_open_batches', 'Group-commit batches being committed right now', () => stats().openBatches);
  readGauge(registry, 'txgate_gateway_idempotency_keys', 'Idempotency keys the gateway remembers', () => stats().idempotencyKeys);
  mirroredCounter(registry, 'txgate_gateway_transactions_total', 'Kafka transactions the gateway ran', () => stats().transactions);
  mirroredCounter(registry, 'txgate_gateway_requests_total', 'Requests submitted to the transaction service', () => stats().requests);
  mirroredCounter(registry, 'txgate_gateway_batched_requests_total', 'Requests that shared a transaction with at least one other request', () => stats().batchedRequests);
}
