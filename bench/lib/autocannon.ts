/** autocannon's programmatic API, typed (it ships no types): the part the benchmarks use. */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';

export interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Called before each request is sent; `context` is the connection's, kept until its response. */
  setupRequest?: (request: AutocannonRequest, context: Record<string, unknown>) => AutocannonRequest;
  onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
}

export interface AutocannonOptions {
  url: string;
  connections: number;
  /** Seconds. */
  duration: number;
  /** Seconds a request may take before it counts as a timeout (and an error). */
  timeout: number;
  requests: AutocannonRequest[];
  /** Requests per second over all connections (connections are capped at this number); unset: as fast as answers come. */
  overallRate?: number;
  /** Called with each connection's client as it is created, before its first request is sent. */
  setupClient?: (client: AutocannonClient) => void;
}

/**
 * One connection (autocannon's httpClient). It emits 'request' as each request is written,
 * 'response' (status, bytes, ms), 'timeout' and 'connError'; after a timeout or a dropped
 * connection it reconnects and sends the next request at once.
 */
export interface AutocannonClient extends EventEmitter {
  /** Requests written so far. */
  reqsMade: number;
  /** Once reqsMade reaches it, the client closes instead of sending the next request. */
  responseMax?: number;
  destroyed: boolean;
}

export interface AutocannonResult {
  /** Seconds. */
  duration: number;
  /** Transport errors, timeouts included. */
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  statusCodeStats: Record<string, { count: number }>;
  /** `sent`: requests written; `total`: responses (any status). */
  requests: { sent: number; total: number };
  /** Milliseconds. */
  latency: { p50: number; p99: number; p99_9: number };
}

/** A running load: awaiting it gives the result; stop() ends it early (the result covers what ran). */
export interface AutocannonRun extends PromiseLike<AutocannonResult> {
  stop(): void;
}

export const autocannon = createRequire(import.meta.url)('autocannon') as (opts: AutocannonOptions) => AutocannonRun;
