// The verifier's load driver and HTTP client against scripted HTTP servers: which answers are
// retried (same key, same body) and which are definitive, the give-up deadline, how `spray` and
// `race` spread attempts over gateways, and the parsers for Retry-After and Kafka's
// TransactionsCommand output.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { classifyAnswer, parseRetryAfter, retryDelayMs, DEFAULT_RETRY_POLICY } from '../../src/verify/http-client.js';
import { runLoad } from '../../src/verify/load.js';
import { parseFindHanging, parseTransactionsList } from '../../src/verify/transactions.js';

interface Seen {
  key: string;
  body: string;
  authorization: string | undefined;
}

type Script = (req: { id: number; attempt: number; body: { records: Array<{ topic: string; key: string; value: unknown }> } }, res: ServerResponse) => void;

const servers: Array<ReturnType<typeof createServer>> = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A gateway stand-in: `script` answers each attempt; `seen` records every attempt it got. */
async function stub(script: Script): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const attempts = new Map<string, number>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const key = String(req.headers['idempotency-key']);
      const body = Buffer.concat(chunks).toString();
      seen.push({ key, body, authorization: req.headers.authorization });
      const attempt = attempts.get(key) ?? 0;
      attempts.set(key, attempt + 1);
      script({ id: Number(key.split('-').at(-1)), attempt, body: JSON.parse(body) }, res);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** Positions a deterministic gateway would give: partition 0, offset id*10+index. */
function commit(res: ServerResponse, id: number, records: Array<{ topic: string }>): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ status: 'committed', records: records.map((r, i) => ({ topic: r.topic, partition: 0, offset: String(id * 10 + i) })) }));
}

function problem(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
  res.end(JSON.stringify({ status, code }));
}

const fast = { baseBackoffMs: 1, maxBackoffMs: 2, retryAfterCapMs: 1 };

describe('runLoad', () => {
  it('retries 503, 409 and dropped connections with the same key and body; a 422 is definitive', async () => {
    const gw = await stub(({ id, attempt, body }, res) => {
      if (id % 4 === 1 && attempt === 0) return problem(res, 503, 'TXGATE_POOL_SATURATED', { 'retry-after': '3600' });
      if (id % 4 === 1 && attempt === 1) return problem(res, 409, 'TXGATE_IDEMPOTENCY_IN_FLIGHT');
      if (id % 4 === 2) return problem(res, 422, 'TXGATE_RECORD_REJECTED');
      if (id % 4 === 3 && attempt === 0) return void res.socket?.destroy();
      commit(res, id, body.records);
    });
    const load = await runLoad({ gateways: [gw.url], topics: ['a', 'b'], requests: 40, concurrency: 8, recordsPerRequest: 3, apiKey: 'tok', retryPolicy: fast, runId: 'r1' });

    assert.equal(load.requests.length, 40);
    for (const r of load.requests) {
      assert.equal(r.outcomes.length, 1);
      const o = r.outcomes[0]!;
      if (r.id % 4 === 2) assert.deepEqual(o, { kind: 'failed', status: 422, code: 'TXGATE_RECORD_REJECTED' });
      else {
        assert.equal(o.kind, 'acknowledged', `request ${r.id}`);
        if (o.kind === 'acknowledged') assert.deepEqual(o.positions.map((p) => p.offset), ['0', '1', '2'].map((i) => String(r.id * 10 + Number(i))));
      }
    }
    assert.deepEqual(load.stats.answers, { '200': 30, '503': 10, '409': 10, '422': 10, 'connection-error': 10 });
    assert.equal(load.stats.problemCodes['503 TXGATE_POOL_SATURATED'], 10);
    assert.equal(load.stats.attempts, 70);

    // every attempt of a key carried the same body, with the bearer token
    const bodies = new Map<string, Set<string>>();
    for (const s of gw.seen) {
      assert.equal(s.authorization, 'Bearer tok');
      bodies.set(s.key, (bodies.get(s.key) ?? new Set()).add(s.body));
    }
    assert.equal(bodies.size, 40);
    assert.ok([...bodies.values()].every((b) => b.size === 1), 'retries resend the same body');

    // the records name themselves: key and value carry the run, request and index; topics alternate
    const r5 = JSON.parse([...bodies.get('verify-r1-5')!][0]!) as { records: Array<{ topic: string; key: string; value: { run: string; request: number; record: number } }> };
    assert.deepEqual(r5.records.map((r) => [r.topic, r.key, r.value.run, r.value.request, r.value.record]), [
      ['b', 'verify-r1-5-0', 'r1', 5, 0],
      ['a', 'verify-r1-5-1', 'r1', 5, 1],
      ['b', 'verify-r1-5-2', 'r1', 5, 2],
    ]);
  });

  it('a request without a definitive answer by the give-up deadline is undecided', async () => {
    const gw = await stub((_req, res) => problem(res, 504, 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN'));
    const load = await runLoad({ gateways: [gw.url], topics: ['t'], requests: 3, concurrency: 3, giveUpMs: 150, retryPolicy: fast });
    for (const r of load.requests) {
      assert.equal(r.outcomes.length, 1);
      const o = r.outcomes[0]!;
      assert.equal(o.kind, 'undecided');
      // the last attempt may be cut short by the deadline itself
      if (o.kind === 'undecided') assert.match(o.last, /^(504 TXGATE_TRANSACTION_OUTCOME_UNKNOWN|timeout)$/);
    }
    assert.ok((load.stats.answers['504'] ?? 0) >= 3);
    assert.ok(gw.seen.length >= 6, 'it kept retrying until the deadline');
  });

  it('spray sends each attempt to the next gateway; round-robin keeps a request on one', async () => {
    const down = await stub((_req, res) => problem(res, 503, 'TXGATE_SHUTTING_DOWN'));
    const up = await stub(({ id, body }, res) => commit(res, id, body.records));
    const sprayed = await runLoad({ gateways: [down.url, up.url], mode: 'spray', topics: ['t'], requests: 10, concurrency: 2, retryPolicy: fast });
    assert.ok(sprayed.requests.every((r) => r.outcomes[0]?.kind === 'acknowledged'));
    // even requests start on the failing gateway and move on; odd ones start on the good one
    assert.deepEqual(sprayed.stats.perGateway, { [down.url]: { attempts: 5, acknowledged: 0 }, [up.url]: { attempts: 10, acknowledged: 10 } });

    const pinned = await runLoad({ gateways: [down.url, up.url], topics: ['t'], requests: 4, concurrency: 4, giveUpMs: 100, retryPolicy: fast });
    assert.deepEqual(
      pinned.requests.map((r) => r.outcomes[0]?.kind),
      ['undecided', 'acknowledged', 'undecided', 'acknowledged'],
    );
  });

  it('race sends every request to every gateway, each side retrying on its own', async () => {
    const a = await stub(({ id, body }, res) => commit(res, id, body.records));
    const b = await stub(({ id, attempt, body }, res) => (attempt === 0 ? problem(res, 409, 'TXGATE_IDEMPOTENCY_IN_FLIGHT') : commit(res, id, body.records)));
    const load = await runLoad({ gateways: [a.url, b.url], mode: 'race', topics: ['t'], requests: 12, concurrency: 4, retryPolicy: fast });
    for (const r of load.requests) assert.deepEqual(r.outcomes.map((o) => o.kind), ['acknowledged', 'acknowledged']);
    assert.equal(new Set(a.seen.map((s) => s.key)).size, 12);
    assert.equal(b.seen.length, 24, 'b answered 409 once per key, then 200');
    assert.deepEqual(load.stats.answers, { '200': 24, '409': 12 });
  });

  it('--duration alone bounds the run; an aborted run stops retrying', async () => {
    const gw = await stub((_req, res) => problem(res, 503, 'TXGATE_ACQUIRE_TIMEOUT'));
    const stop = new AbortController();
    const running = runLoad({ gateways: [gw.url], topics: ['t'], durationMs: 60_000, concurrency: 2, retryPolicy: fast, signal: stop.signal });
    stop.abort();
    const load = await running;
    assert.ok(load.requests.length <= 2);
    assert.ok(load.requests.every((r) => r.outcomes[0]?.kind === 'undecided'));
  });
});

describe('the HTTP client rules', () => {
  it('classifies answers: 200 acknowledged, 408/409/429/5xx and transport failures retried, other statuses definitive', () => {
    assert.equal(classifyAnswer({ status: 200 }), 'acknowledged');
    for (const s of [408, 409, 429, 500, 502, 503, 504]) assert.equal(classifyAnswer({ status: s }), 'retry', String(s));
    for (const s of ['connection-error', 'timeout'] as const) assert.equal(classifyAnswer({ status: s }), 'retry');
    for (const s of [400, 401, 403, 404, 413, 415, 422]) assert.equal(classifyAnswer({ status: s }), 'failed', String(s));
  });

  it('honours Retry-After up to the cap, and backs off exponentially with jitter without it', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(null), undefined);
    const policy = { ...DEFAULT_RETRY_POLICY, baseBackoffMs: 100, maxBackoffMs: 1000, retryAfterCapMs: 2000 };
    assert.equal(retryDelayMs({ status: 503, retryAfterMs: 1000 }, 1, policy), 1000);
    assert.equal(retryDelayMs({ status: 503, retryAfterMs: 60_000 }, 1, policy), 2000);
    assert.equal(retryDelayMs({ status: 409 }, 1, policy, () => 0), 50);
    assert.equal(retryDelayMs({ status: 409 }, 3, policy, () => 1), 400);
    assert.equal(retryDelayMs({ status: 409 }, 40, policy, () => 1), 1000);
  });
});

describe("Kafka's TransactionsCommand output", () => {
  it('parses `transactions list`', () => {
    const out = 'TransactionalId\tCoordinator\tProducerId\tTransactionState\t\ntxgate-a-0\t1\t7\tCompleteCommit\t\nother\t1\t9\tOngoing\t\n';
    assert.deepEqual(parseTransactionsList(out), [
      { transactionalId: 'txgate-a-0', coordinator: 1, producerId: '7', state: 'CompleteCommit' },
      { transactionalId: 'other', coordinator: 1, producerId: '9', state: 'Ongoing' },
    ]);
    assert.deepEqual(parseTransactionsList('TransactionalId\tCoordinator\tProducerId\tTransactionState\t\n'), []);
  });

  it('parses `transactions find-hanging`', () => {
    const out =
      'Topic\tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\tLastTimestamp\tDuration(min)\t\n' +
      'orders\t2\t1001\t3\t0\t4711\t1700000000000\t42\t\n';
    assert.deepEqual(parseFindHanging(out), [{ topic: 'orders', partition: 2, producerId: '1001', producerEpoch: 3, startOffset: '4711', durationMinutes: 42 }]);
  });
});
