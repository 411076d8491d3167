/**
 * Graceful shutdown under load: `txgate serve` as a child process takes concurrent requests,
 * gets SIGTERM mid-stream, and must exit 0 with every 200-acknowledged record in Kafka exactly
 * once (read_committed). Requests refused or cut off during the drain are not acknowledged, so
 * they may or may not be there; acknowledged ones must.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { consumeAll, createTopics, testBootstrap, uniqueName } from '../support/kafka.js';

const bootstrap = testBootstrap();
const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'txgate.cjs');
const WORKERS = 16;
const ACKED_BEFORE_SIGTERM = 150;

describe('txgate serve: SIGTERM under load', () => {
  const topicA = uniqueName('drain-a');
  const topicB = uniqueName('drain-b');
  let child: ChildProcess;
  let url: string;
  const logs: string[] = [];

  before(async () => {
    await createTopics(bootstrap, [
      { topic: topicA, partitions: 3 },
      { topic: topicB, partitions: 2 },
    ]);
    child = spawn(
      process.execPath,
      [BIN, 'serve', '--port', '0', '--pool-size', '2', '--shutdown-timeout-ms', '30000', '--log-level', 'info'],
      {
        env: {
          ...process.env,
          TXGATE_BROKERS: bootstrap,
          TXGATE_INSTANCE_ID: uniqueName('drain'),
          TXGATE_IDEMPOTENCY_TOPIC: uniqueName('drain-idem'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    const lines = readline.createInterface({ input: child.stdout! });
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the gateway did not become ready:\n${logs.join('')}`)), 120_000);
      child.once('exit', (code) => reject(new Error(`the gateway exited (${code}) before it was ready:\n${logs.join('')}`)));
      lines.on('line', (line) => {
        logs.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === 'txgate gateway ready' && entry.url) {
            clearTimeout(timer);
            resolve(entry.url);
          }
        } catch {
          // not a log line
        }
      });
    });
  });
  after(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });

  it('exits 0 and every acknowledged record is committed exactly once', async () => {
    const acked: string[] = [];
    const refused = new Map<string, number>();
    let stop = false;
    let sent = 0;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const id = `w${w}-${i}`;
        sent++;
        try {
          const res = await fetch(`${url}/v1/transactions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ records: [{ topic: topicA, key: id, value: id }, { topic: topicB, value: id }] }),
          });
          const body = (await res.json()) as { code?: string };
          if (res.status === 200) acked.push(id);
          else {
            refused.set(body.code ?? String(res.status), (refused.get(body.code ?? String(res.status)) ?? 0) + 1);
            // draining: this instance takes nothing new
            if (res.status === 503) return;
          }
        } catch {
          return; // connection refused or closed: the server is gone
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
    const deadline = Date.now() + 60_000;
    while (acked.length < ACKED_BEFORE_SIGTERM && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(acked.length >= ACKED_BEFORE_SIGTERM, `only ${acked.length} requests were acknowledged`);
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const ackedAtSigterm = acked.length;
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    stop = true;
    await Promise.all(workers);
    assert.equal(signal, null, logs.join('\n'));
    assert.equal(code, 0, logs.join('\n'));
    assert.ok(
      logs.some((l) => /"clean":true/.test(l) && /gateway stopped/.test(l)),
      'the gateway reports a clean drain',
    );
    // Requests in flight at SIGTERM (16 workers keep requests in flight all the time) were
    // finished and answered, not dropped.
    const ackedAfter = acked.length - ackedAtSigterm;
    assert.ok(ackedAfter > 0, 'requests in flight at SIGTERM were answered');

    const expected = acked.length;
    const [a, b] = await Promise.all([
      consumeAll(bootstrap, [topicA], { isolation: 'read_committed', expected }),
      consumeAll(bootstrap, [topicB], { isolation: 'read_committed', expected }),
    ]);
    for (const [name, records] of [['A', a], ['B', b]] as const) {
      const counts = new Map<string, number>();
      for (const r of records) {
        const v = JSON.parse(r.value!.toString()) as string;
        counts.set(v, (counts.get(v) ?? 0) + 1);
      }
      for (const id of acked) assert.equal(counts.get(id), 1, `${id} appears ${counts.get(id) ?? 0} times in topic ${name}`);
      for (const [id, n] of counts) assert.equal(n, 1, `${id} appears ${n} times in topic ${name}`);
    }
    // Figures for the report (not assertions on speed).
    console.log(`# shutdown: ${sent} sent, ${acked.length} acknowledged (${ackedAfter} after SIGTERM), refused: ${JSON.stringify(Object.fromEntries(refused))}`);
  });
});
