/**
 * The load generator, run as its own process (bench/compare.ts and bench/seed-growth.ts spawn it)
 * so autocannon never shares an event loop or a core's time slice accounting with the process
 * under test. It takes one JSON argument (LoadgenSpec), or @file holding it, and prints one JSON line (RunResult,
 * bench/lib/work.ts) on stdout, preceded by {"progress": ...} lines when asked.
 *
 * One autocannon run covers warm-up, window and drain on the same connections: a server that
 * builds state per connection (the Strimzi bridge opens a Kafka producer per HTTP connection)
 * would be cold again on new ones. Only answers received within the window are counted.
 */
import { readFileSync } from 'node:fs';
import { autocannon, type AutocannonClient, type AutocannonRequest } from './autocannon.js';
import { LoadPhases, runResult } from './phases.js';

export interface LoadgenSpec {
  url: string;
  connections: number;
  /** The measured window. */
  seconds: number;
  /**
   * The body of every request, or bodies sent in turn (different keys, so records spread over
   * the partitions); the servers under test do not need unique records.
   */
  body: string | string[];
  contentType: string;
  /** Send a fresh Idempotency-Key header on every request. */
  idempotencyKeys?: boolean;
  /** A request unanswered this long counts as a timeout (default 30 s; never shorter than warmupMaxSeconds, see below). */
  timeoutSeconds?: number;
  /** Seconds of the same load before the window (discarded); 0 or unset: none. */
  warmupSeconds?: number;
  /** The warm-up also lasts until every connection has had an answer, up to this many seconds in all. */
  warmupMaxSeconds?: number;
  /** After the window, how long requests in flight may take to finish before the connections are cut (default 10 s). */
  drainSeconds?: number;
  /** Requests per second over all connections; unset: a closed loop, each connection sending as soon as it is answered. */
  rate?: number;
  /** Print {"progress": {t, sent, answered, ok, errors}} (counts since the start) every this many seconds. */
  progressSeconds?: number;
}

interface Conn {
  client: AutocannonClient;
  /** performance.now() when its request in flight was sent; undefined when none is. */
  sentAt?: number;
  answered: boolean;
  answeredInWindow: boolean;
}

async function main(): Promise<void> {
  const arg = process.argv[2] ?? '{}';
  const spec = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as LoadgenSpec;
  const url = new URL(spec.url);
  const warmup = spec.warmupSeconds ?? 0;
  const warmupMax = warmup > 0 ? Math.max(warmup, spec.warmupMaxSeconds ?? warmup) : 0;
  const drain = spec.drainSeconds ?? 10;
  // A timeout closes the connection, and with it whatever the server built for it: a bridge still
  // creating 256 producers when requests time out would start over on the new connections and
  // never warm up. So no request is cut before the warm-up could have ended.
  const timeout = Math.max(spec.timeoutSeconds ?? 30, warmupMax);
  let seq = 0;
  const tag = `${process.pid}-${Date.now()}`;
  const bodies = typeof spec.body === 'string' ? [spec.body] : spec.body;

  const phases = new LoadPhases(warmup, warmupMax);
  const conns: Conn[] = [];
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const count = (kind: string) => (errors[kind] = (errors[kind] ?? 0) + 1);
  let ok = 0;
  let sent = 0;
  const run = { sent: 0, answered: 0, ok: 0, errors: 0 };
  let warmupAnswers = 0;

  const load = autocannon({
    url: url.origin,
    connections: spec.connections,
    // An upper bound only: the window and the drain below end the run.
    duration: warmupMax + spec.seconds + drain + timeout + 60,
    timeout,
    ...(spec.rate ? { overallRate: spec.rate } : {}),
    // Without keys, each connection cycles through the bodies, which autocannon builds once; a
    // fresh key needs a request built each time, and then the body is chosen there too.
    requests: spec.idempotencyKeys
      ? [
          {
            method: 'POST',
            path: url.pathname,
            headers: { 'content-type': spec.contentType },
            setupRequest: (r: AutocannonRequest) => {
              const n = seq++;
              return { ...r, body: bodies[n % bodies.length], headers: { ...r.headers, 'idempotency-key': `bench-${tag}-${n}` } };
            },
          },
        ]
      : bodies.map((body) => ({ method: 'POST', path: url.pathname, headers: { 'content-type': spec.contentType }, body })),
    setupClient: (client) => {
      const c: Conn = { client, answered: false, answeredInWindow: false };
      conns.push(c);
      client.on('request', () => {
        // One request at a time per connection (no pipelining): a new one means the previous one
        // went with its connection (timeout, connection error, server close) unanswered.
        c.sentAt = performance.now();
        run.sent++;
        if (phases.phase === 'window') sent++;
      });
      client.on('response', (status: number, _bytes: number, ms: number) => {
        c.sentAt = undefined;
        c.answered = true;
        run.answered++;
        const good = status >= 200 && status < 300;
        if (good) run.ok++;
        else run.errors++;
        if (phases.phase === 'warmup') warmupAnswers++;
        if (phases.phase !== 'window') return;
        c.answeredInWindow = true;
        latencies.push(ms);
        if (good) ok++;
        else count(`HTTP ${status}`);
      });
      client.on('timeout', () => {
        run.errors++;
        if (phases.phase === 'window') count('timeout');
      });
      client.on('connError', () => {
        run.errors++;
        if (phases.phase === 'window') count('connection error');
      });
    },
  });
  const finished = new Promise<void>((resolve, reject) => load.then(() => resolve(), reject));

  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const progress = spec.progressSeconds
    ? setInterval(() => process.stdout.write(`${JSON.stringify({ progress: { t: elapsed(), ...run } })}\n`), spec.progressSeconds * 1000)
    : undefined;

  // Warm-up and window: the same rule for every mode (phases.ts).
  const window = await phases.measure(conns, spec.seconds);

  // Drain: each connection finishes its request in flight, then closes instead of sending another
  // (autocannon's per-connection request cap), so what never gets an answer is counted, not cut.
  for (const c of conns) if (!c.client.destroyed) c.client.responseMax = Math.max(1, c.client.reqsMade);
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = await Promise.race([finished.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), drain * 1000)))]);
  clearTimeout(timer);
  if (gaveUp) {
    load.stop();
    await finished;
  }
  if (progress) clearInterval(progress);

  const out = runResult(window, latencies, { ok, errors, sent, neverAnswered: run.sent - run.answered, warmupAnswers });

  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
