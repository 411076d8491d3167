/**
 * The load generator, run as its own process (bench/lib/harness.ts spawns it) so autocannon never
 * shares an event loop or a core's time slice accounting with the process under test. It takes
 * one JSON argument, runs autocannon, and prints one JSON line (LoadgenResult) on stdout.
 */
import { createRequire } from 'node:module';

export interface LoadgenSpec {
  url: string;
  connections: number;
  seconds: number;
  /** The same body for every request: the servers under test do not need unique records. */
  body: string;
  contentType: string;
  /** Send a fresh Idempotency-Key header on every request. */
  idempotencyKeys?: boolean;
  timeoutSeconds?: number;
}

export interface LoadgenResult {
  seconds: number;
  ok: number;
  /** Non-2xx answers by status, plus transport errors and timeouts. */
  errors: Record<string, number>;
  p50: number;
  p99: number;
  p999: number;
}

// autocannon ships no types: the part of its API used here.
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  '2xx': number;
  statusCodeStats: Record<string, { count: number }>;
  latency: { p50: number; p99: number; p99_9: number };
}
interface AutocannonRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: {
  url: string;
  connections: number;
  duration: number;
  timeout: number;
  requests: AutocannonRequest[];
}) => PromiseLike<AutocannonResult>;

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadgenSpec;
  const url = new URL(spec.url);
  let seq = 0;
  const tag = `${process.pid}-${Date.now()}`;
  const result = await autocannon({
    url: url.origin,
    connections: spec.connections,
    duration: spec.seconds,
    timeout: spec.timeoutSeconds ?? 30,
    requests: [
      {
        method: 'POST',
        path: url.pathname,
        headers: { 'content-type': spec.contentType },
        body: spec.body,
        ...(spec.idempotencyKeys
          ? { setupRequest: (r: AutocannonRequest) => ({ ...r, headers: { ...r.headers, 'idempotency-key': `bench-${tag}-${seq++}` } }) }
          : {}),
      },
    ],
  });
  const errors: Record<string, number> = {};
  for (const [code, s] of Object.entries(result.statusCodeStats)) if (!code.startsWith('2')) errors[`HTTP ${code}`] = s.count;
  // autocannon's `errors` counts timeouts too: report them apart.
  if (result.errors - result.timeouts > 0) errors['connection error'] = result.errors - result.timeouts;
  if (result.timeouts > 0) errors.timeout = result.timeouts;
  const out: LoadgenResult = {
    seconds: result.duration,
    ok: result['2xx'],
    errors,
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
