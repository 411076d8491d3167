/**
 * The gateway's promise on real failures: "a client that retries with the same Idempotency-Key and
 * body until it gets a definitive answer (200 or a 4xx) has its records written exactly once,
 * through gateway crashes and broker failover".
 *
 * A 3-node cluster (RF 3, min ISR 2) and `txgate serve` as a child process take a steady keyed
 * load from 16 retrying clients while, in turn: the gateway is SIGKILLed and started again with
 * the same instance id (its successor fences the dead one's open transactions); the broker leading
 * a data partition is SIGKILLed (leadership moves after broker.session.timeout.ms, about 9 s) and
 * later restarted; the gateway is SIGKILLed again; and then another partition's leader and the
 * gateway die together, so the successor starts while coordinators and leaders are still moving.
 * After every fault the load must make progress again. Then, read_committed: every request has
 * both of its records exactly once, at the offsets its 200 reported, and nothing else is there.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { LocalKafkaCluster, type ClusterNode } from '../../src/local-kafka/cluster.js';
import { consumeAll, createTopics, uniqueName, waitFor, type ConsumedRecord } from '../support/kafka.js';
import { CLUSTER_BASE_PORT, withPortLock } from '../support/ports.js';
import { freePort, GatewayProcess } from '../support/gateway-process.js';

const INSTANCE_ID = 'failover-gw';
/** The gateway's default; the test reports which of its partitions the killed broker led. */
const IDEMPOTENCY_TOPIC = 'txgate.idempotency';
const PARTITIONS = 3;
const WORKERS = 16;
/** One HTTP attempt; a commit stuck behind a failover takes longer, so clients also see 409s. */
const ATTEMPT_TIMEOUT_MS = 5_000;
/** A request still without a definitive answer after this long is stuck (a failure). */
const REQUEST_GIVE_UP_MS = 180_000;
/** 200s the load must reach after each fault (progress, not speed). */
const PROGRESS_ACKS = 150;
/** A deliberate outage between a gateway's death and its successor's start. */
const GATEWAY_OUTAGE_MS = 1_500;
const PROGRESS_TIMEOUT_MS = 120_000;
/**
 * How long a gateway may take to turn ready. It listens at once and retries start-up (producers,
 * the idempotency topic on a cluster that has just come up) for up to its --start-timeout-ms
 * (5 min by default) while /readyz says why it is not ready yet; a slow machine needs minutes.
 */
const READY_TIMEOUT_MS = 300_000;

interface Position {
  topic: string;
  partition: number;
  offset: string;
}

/** One logical request: one idempotency key, one body, retried until definitive. */
interface LogicalRequest {
  key: string;
  body: string;
  partitions: [number, number];
  /** Every attempt's answer: an HTTP status, 'conn' (refused/reset) or 'timeout'. */
  attempts: string[];
  final?: { status: number; code?: string; records?: Position[]; replayed: boolean };
  stuck?: boolean;
}

interface Ack {
  at: number;
  partitions: [number, number];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Clients that retry each request with the same key and body until a definitive answer. */
class RetryingClients {
  readonly requests: LogicalRequest[] = [];
  readonly acks: Ack[] = [];
  /** Non-final answers, by status (or 'conn' / 'timeout'). */
  readonly retries = new Map<string, number>();
  inFlight = 0;
  private stopIssuing = false;
  private quit = false;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly url: () => string,
    private readonly topic: string,
    private readonly runTag: string,
  ) {}

  start(count: number): void {
    this.workers = Array.from({ length: count }, (_, w) => this.worker(w));
  }

  /** No new requests; the ones started are retried to the end. */
  async finish(): Promise<void> {
    this.stopIssuing = true;
    await Promise.all(this.workers);
  }

  /** Stops everything at once (test failure). */
  async abandon(): Promise<void> {
    this.stopIssuing = true;
    this.quit = true;
    await Promise.all(this.workers);
  }

  acksSince(t: number, partition?: number): number {
    return this.acks.filter((a) => a.at >= t && (partition === undefined || a.partitions.includes(partition))).length;
  }

  /** The longest time in [from, to] without any 200. */
  longestGap(from: number, to: number): number {
    let last = from;
    let gap = 0;
    for (const a of this.acks) {
      if (a.at < from || a.at > to) continue;
      gap = Math.max(gap, a.at - last);
      last = a.at;
    }
    return Math.max(gap, to - last);
  }

  private async worker(w: number): Promise<void> {
    for (let i = 0; !this.stopIssuing; i++) {
      const key = `${this.runTag}-w${w}-${i}`;
      // Two partitions per request, so a request is a cross-partition transaction.
      const partitions: [number, number] = [i % PARTITIONS, (i + 1) % PARTITIONS];
      const body = JSON.stringify({
        records: partitions.map((partition, part) => ({ topic: this.topic, partition, key, value: { req: key, part } })),
      });
      const req: LogicalRequest = { key, body, partitions, attempts: [] };
      this.requests.push(req);
      await this.settle(req);
      if (req.stuck || (req.final && req.final.status !== 200)) return;
    }
  }

  private async settle(req: LogicalRequest): Promise<void> {
    const giveUpAt = Date.now() + REQUEST_GIVE_UP_MS;
    for (let attempt = 1; !this.quit; attempt++) {
      if (Date.now() > giveUpAt) {
        req.stuck = true;
        return;
      }
      let label: string;
      let retryAfterMs = 0;
      this.inFlight++;
      try {
        const res = await fetch(`${this.url()}/v1/transactions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': req.key },
          body: req.body,
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        const text = await res.text();
        label = String(res.status);
        const definitive = res.status === 200 || (res.status >= 400 && res.status < 500 && res.status !== 409);
        if (definitive) {
          const doc = JSON.parse(text) as { status?: string; code?: string; records?: Position[] };
          req.attempts.push(label);
          req.final = {
            status: res.status,
            ...(doc.code !== undefined ? { code: doc.code } : {}),
            ...(doc.records !== undefined ? { records: doc.records } : {}),
            replayed: res.headers.get('idempotent-replayed') === 'true',
          };
          if (res.status === 200) this.acks.push({ at: Date.now(), partitions: req.partitions });
          return;
        }
        retryAfterMs = Number(res.headers.get('retry-after') ?? 0) * 1000;
        const code = (JSON.parse(text) as { code?: string }).code;
        if (code) label = `${res.status} ${code}`;
      } catch (err) {
        label = (err as Error).name === 'TimeoutError' ? 'timeout' : 'conn';
      } finally {
        this.inFlight--;
      }
      req.attempts.push(label);
      this.retries.set(label, (this.retries.get(label) ?? 0) + 1);
      const backoff = Math.min(1_000, 50 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      await sleep(Math.max(backoff, retryAfterMs));
    }
  }
}

/** Each partition's leader (node id, -1 for none), per topic. */
async function leadersOf(bootstrap: string, topics: string[]): Promise<Map<string, Map<number, number>>> {
  const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': bootstrap, 'client.id': 'txgate-test-failover' });
  try {
    const described = await new Promise<RdKafka.TopicDescription[]>((resolve, reject) =>
      admin.describeTopics(topics, { timeout: 5_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    return new Map(described.map((t) => [t.name, new Map(t.partitions.map((p) => [p.partition, p.leader?.id ?? -1]))]));
  } finally {
    admin.disconnect();
  }
}

/** Every partition of the topics has all 3 replicas in sync. */
async function fullyReplicated(bootstrap: string, topics: string[]): Promise<boolean> {
  const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': bootstrap, 'client.id': 'txgate-test-failover' });
  try {
    const described = await new Promise<RdKafka.TopicDescription[]>((resolve, reject) =>
      admin.describeTopics(topics, { timeout: 5_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    return described.every((t) => !t.error && t.partitions.every((p) => p.isr.length === 3));
  } catch {
    return false;
  } finally {
    admin.disconnect();
  }
}

async function leaders(bootstrap: string, topic: string): Promise<Map<number, number>> {
  return (await leadersOf(bootstrap, [topic])).get(topic) ?? new Map();
}

/** A gateway's log lines, counted by level and message, e.g. {"warn: transaction aborted": 3}. */
function logSummary(lines: string[]): Record<string, number> {
  const names: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' };
  const counts: Record<string, number> = {};
  for (const line of lines) {
    let what = 'not JSON';
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      what = `${(entry.level !== undefined && names[entry.level]) || String(entry.level)}: ${entry.msg ?? ''}`;
    } catch {
      // a stack trace or the client's own output
    }
    counts[what] = (counts[what] ?? 0) + 1;
  }
  return counts;
}

interface PhaseReport {
  name: string;
  ms: number;
  acks: number;
  longestGapMs: number;
  note: string;
}

it('keyed requests retried through gateway crashes and a broker failover are written exactly once', { timeout: 900_000 }, () =>
  withPortLock('cluster', async () => {
    const testStart = Date.now();
    const stateDir = mkdtempSync(path.join(tmpdir(), 'txgate-failover-'));
    const cluster = new LocalKafkaCluster({ basePort: CLUSTER_BASE_PORT, stateDir });
    const gateways: GatewayProcess[] = [];
    const current = (): GatewayProcess => gateways[gateways.length - 1]!;
    let clients: RetryingClients | undefined;
    try {
      const bootstrap = await cluster.start();
      const clusterUpMs = Date.now() - testStart;
      const topic = uniqueName('failover');
      await createTopics(bootstrap, [{ topic, partitions: PARTITIONS, replicationFactor: 3 }]);
      const port = await freePort();
      const startGateway = async (): Promise<GatewayProcess> => {
        const gw = new GatewayProcess({ label: `gateway #${gateways.length + 1}`, brokers: bootstrap, port, instanceId: INSTANCE_ID });
        gateways.push(gw);
        await gw.ready(READY_TIMEOUT_MS);
        return gw;
      };
      const crashGateway = async (): Promise<number> => {
        const inFlight = clients!.inFlight;
        const exit = await current().kill('SIGKILL');
        assert.equal(exit.signal, 'SIGKILL', `${current().label} died of SIGKILL`);
        await sleep(GATEWAY_OUTAGE_MS);
        await startGateway();
        return inFlight;
      };
      const progress = (since: number, what: string, partition?: number) =>
        waitFor(() => clients!.acksSince(since, partition) >= PROGRESS_ACKS, {
          timeoutMs: PROGRESS_TIMEOUT_MS,
          intervalMs: 50,
          what: `${PROGRESS_ACKS} acknowledged requests ${what}`,
        });

      // The first start creates the idempotency topic on a cluster that has just come up.
      await startGateway();
      clients = new RetryingClients(() => current().url, topic, uniqueName('req'));
      clients.start(WORKERS);

      const phases: PhaseReport[] = [];
      const phase = async (name: string, run: () => Promise<string>): Promise<void> => {
        const t0 = Date.now();
        const acks0 = clients!.acks.length;
        const note = await run();
        const t1 = Date.now();
        phases.push({ name, ms: t1 - t0, acks: clients!.acks.length - acks0, longestGapMs: clients!.longestGap(t0, t1), note });
      };

      await phase('warm-up', async () => {
        await progress(0, 'before any fault');
        return '';
      });

      await phase('gateway crash 1', async () => {
        const inFlight = await crashGateway();
        assert.ok(inFlight > 0, 'requests were in flight when the gateway died');
        await progress(Date.now(), 'after the first gateway restart');
        return `${inFlight} in flight at SIGKILL`;
      });

      const watched = [topic, IDEMPOTENCY_TOPIC, '__transaction_state'];
      /**
       * Kills the broker leading data partition `partition` (and, with crashGatewayToo, the gateway
       * right after, while that broker's partitions and coordinators have no leader yet), waits
       * for writes to that partition through its new leader, restarts the broker and waits for
       * progress again.
       */
      const brokerFailover = async (partition: number, crashGatewayToo: boolean): Promise<string> => {
        // A second broker down before the first one is back in sync would leave partitions under min ISR.
        await waitFor(() => fullyReplicated(bootstrap, watched), {
          timeoutMs: 120_000,
          intervalMs: 500,
          what: 'every replica to be in sync before killing a broker',
        });
        const before = await leadersOf(bootstrap, watched);
        const leader = before.get(topic)?.get(partition);
        assert.ok(leader === 1 || leader === 2 || leader === 3, `partition ${partition} has a leader: ${leader}`);
        const killed: ClusterNode = leader;
        const led = [...before]
          .map(([t, ps]) => `${t === topic ? 'data' : t} ${[...ps].filter(([, l]) => l === killed).map(([p]) => p).join(',') || '-'}`)
          .join(', ');
        const killedAt = Date.now();
        await cluster.killNode(killed);
        let gatewayNote = '';
        if (crashGatewayToo) {
          const inFlight = await crashGateway();
          assert.ok(inFlight > 0, 'requests were in flight when the gateway died');
          gatewayNote = `; gateway SIGKILLed with ${inFlight} requests in flight, successor ready ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the broker died`;
        }
        await waitFor(
          async () => {
            const now = await leaders(bootstrap, topic).then((l) => l.get(partition) ?? -1, () => -1);
            return now > 0 && now !== killed;
          },
          { timeoutMs: 60_000, intervalMs: 500, what: `partition ${partition} to get a leader other than node ${killed}` },
        );
        const movedAfterMs = Date.now() - killedAt;
        await progress(Date.now(), `writing to partition ${partition} after node ${killed} died`, partition);
        const restartAt = Date.now();
        await cluster.startNode(killed);
        const restartMs = Date.now() - restartAt;
        await progress(Date.now(), `after node ${killed} came back`);
        return (
          `node ${killed} (leading ${led}) killed; leader of p${partition} moved after ${(movedAfterMs / 1000).toFixed(1)} s` +
          `${gatewayNote}; node restart ${(restartMs / 1000).toFixed(1)} s`
        );
      };

      await phase('broker failover', () => brokerFailover(0, false));

      await phase('gateway crash 2', async () => {
        const inFlight = await crashGateway();
        assert.ok(inFlight > 0, 'requests were in flight when the gateway died');
        await progress(Date.now(), 'after the second gateway restart');
        return `${inFlight} in flight at SIGKILL`;
      });

      await phase('broker failover + gateway crash 3', () => brokerFailover(1, true));

      await phase('drain', async () => {
        await clients!.finish();
        return '';
      });

      const exit = await current().kill('SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, `the last gateway drains cleanly:\n${current().logs.join('\n')}`);

      const requests = clients.requests;
      const problems: string[] = [];
      for (const r of requests) {
        if (r.stuck) problems.push(`${r.key}: no definitive answer after ${REQUEST_GIVE_UP_MS} ms (${r.attempts.join(' ')})`);
        else if (r.final?.status !== 200) problems.push(`${r.key}: definitive ${r.final?.status} ${r.final?.code ?? ''} (${r.attempts.join(' ')})`);
      }
      const acked = requests.filter((r) => r.final?.status === 200);

      let records: ConsumedRecord[];
      try {
        records = await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: acked.length * 2, timeoutMs: 60_000 });
      } catch {
        // Fewer records than acknowledged: read what is there and say exactly which are missing.
        records = await consumeAll(bootstrap, [topic], { isolation: 'read_committed', timeoutMs: 60_000 });
      }
      const seen = new Map<string, Array<{ part: number; at: Position }>>();
      for (const rec of records) {
        const { req, part } = JSON.parse(rec.value!.toString()) as { req: string; part: number };
        const at = { topic: rec.topic, partition: rec.partition, offset: rec.offset };
        seen.set(req, [...(seen.get(req) ?? []), { part, at }]);
      }
      const byKey = new Map(requests.map((r) => [r.key, r]));
      for (const [key, parts] of seen) {
        const where = parts.map((p) => `part ${p.part} at ${p.at.partition}/${p.at.offset}`).join(', ');
        const req = byKey.get(key);
        if (!req) problems.push(`${key}: in the topic but never sent (${where})`);
        const sorted = parts.map((p) => p.part).sort();
        if (sorted.join() !== '0,1') {
          problems.push(`${key}: ${sorted.length > 2 ? 'written more than once' : 'half visible'}: ${where} (${req?.attempts.join(' ') ?? ''})`);
        }
      }
      for (const r of acked) {
        const parts = seen.get(r.key) ?? [];
        if (parts.length === 0) {
          problems.push(`${r.key}: acknowledged at ${JSON.stringify(r.final?.records)} but not in the topic (${r.attempts.join(' ')})`);
        }
        if (parts.length !== 2) continue; // reported above
        const actual = [0, 1].map((part) => parts.find((p) => p.part === part)?.at);
        if (JSON.stringify(actual) !== JSON.stringify(r.final?.records)) {
          problems.push(`${r.key}: the 200 reported ${JSON.stringify(r.final?.records)}, the topic has ${JSON.stringify(actual)}`);
        }
      }

      // Records of transactions that were aborted (fenced by a successor, or aborted after a failure):
      // evidence that the faults hit open transactions, not an assertion.
      const uncommitted = await consumeAll(bootstrap, [topic], { isolation: 'read_uncommitted', timeoutMs: 60_000 });
      const retried = requests.filter((r) => r.attempts.length > 1).length;
      const replayed = acked.filter((r) => r.final?.replayed).length;
      const retries = Object.fromEntries([...clients.retries].sort(([, a], [, b]) => b - a));
      const phaseText = phases
        .map((p) => `${p.name} ${(p.ms / 1000).toFixed(1)} s, ${p.acks} acks, longest gap ${(p.longestGapMs / 1000).toFixed(1)} s${p.note ? ` (${p.note})` : ''}`)
        .join('; ');
      console.log(
        `# failover: ${requests.length} requests, ${acked.length} acknowledged (${replayed} replayed), ${retried} retried, ` +
          `${records.length} records read (${uncommitted.length - records.length} more aborted ones read_uncommitted); ` +
          `retries by answer: ${JSON.stringify(retries)}; gateway logs: ${gateways.map((g) => JSON.stringify(logSummary(g.logs))).join(' ')}`,
      );
      console.log(`# failover phases: cluster start ${(clusterUpMs / 1000).toFixed(1)} s; ${phaseText}; total ${((Date.now() - testStart) / 1000).toFixed(1)} s`);

      assert.equal(gateways.length, 4, 'the gateway ran four times (three crashes)');
      assert.deepEqual(problems.slice(0, 30), [], `${problems.length} violations of the promise`);
      assert.equal(records.length, acked.length * 2, 'every record in the topic belongs to an acknowledged request, once');
    } catch (err) {
      for (const gw of gateways) {
        console.log(`# ${gw.label} log (last 40 lines):\n${gw.logs.slice(-40).join('\n')}`);
      }
      throw err;
    } finally {
      await clients?.abandon();
      for (const gw of gateways) if (gw.alive) await gw.kill('SIGKILL').catch(() => {});
      await cluster.stop().catch((err: unknown) => console.log(`# cluster stop failed: ${String(err)}`));
      rmSync(stateDir, { recursive: true, force: true });
    }
  }),
);
