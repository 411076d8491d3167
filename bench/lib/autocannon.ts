/** autocannon's programmatic API, typed (it ships no types): the part the benchmarks use. */
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
  /** Milliseconds. */
  latency: { p50: number; p99: number; p99_9: number };
}

/** A running load: awaiting it gives the result; stop() ends it early (the result covers what ran). */
export interface AutocannonRun extends PromiseLike<AutocannonResult> {
  stop(): void;
}

export const autocannon = createRequire(import.meta.url)('autocannon') as (opts: AutocannonOptions) => AutocannonRun;
