/**
 * The load generator, run as its own process (bench/lib/harness.ts spawns it) so autocannon never
 * shares an event loop or a core's time slice accounting with the process under test. It takes
 * one JSON argument, runs autocannon, and prints one JSON line (RunResult, bench/lib/work.ts) on stdout.
 */
import { autocannon, type AutocannonRequest } from './autocannon.js';
import type { RunResult } from './work.js';

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
  const out: RunResult = {
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
