/**
 * Fault scenarios on a local 3-node cluster (RF 3, min ISR 2), each under `txgate verify` load:
 * the verifier's clients keep sending keyed requests (retrying each with the same key until a
 * definitive answer) through real `txgate serve` processes while a fault is injected and
 * repaired; then the verifier reads everything back (read_committed) and counts anomalies
 * (lost, duplicated, partial, phantom, misplaced, corrupt, unexpected, conflicting), and Kafka's
 * TransactionsCommand reports transactions of ours still open or hanging. Every count must be 0.
 *
 * Beside the anomalies, each scenario measures what clients went through: the error answers
 * they saw, the longest time without any acknowledgement, and the time to recover (see
 * attempts.ts, RECOVERY_RULE: the acknowledgement rate back to half of the pre-fault baseline,
 * and staying there).
 *
 * Used by bench/faults.ts (the report) and test/integration/faults.test.ts (CI, --quick).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ClusterNode } from '../../src/local-kafka/cluster.js';
import { describeLagging, readTopics, waitForEndOffsets, type TopicPosition } from '../../src/kafka/read-topic.js';
import { buildReport, check, checkTransactions, runLoad, type GatewayMode, type LoadOptions, type LoadResult, type TransactionsView, type VerifyReport } from '../../src/verify/index.js';
import { runKeyPrefix } from '../../src/verify/payload.js';
import type { Example, ReadRecord } from '../../src/verify/types.js';
import { GatewayProcess, freePort } from '../../test/support/gateway-process.js';
import { scenarioSeries, type ScenarioSeries } from '../lib/fault-series.js';
import {
  AttemptRecorder,
  countBetween,
  countByAnswer,
  firstAckAfter,
  longestGap,
  pct,
  ratePerSecond,
  recoveredAt,
  RECOVERY_RULE,
  type Attempt,
  type RecoveryRule,
} from './attempts.js';
import { FaultCluster, NODES, pooledTransactionalIds, TRANSACTION_STATE_TOPIC } from './cluster.js';

export type ScenarioId = 'broker-leader' | 'coordinator' | 'gateway-kill' | 'rolling-restart' | 'zombie' | 'race' | 'freeze' | 'topic-delete';

export interface ScenarioInfo {
  id: ScenarioId;
  number: number;
  title: string;
  /** What the scenario shows (docs and report). */
  shows: string;
}

export const SCENARIOS: readonly ScenarioInfo[] = [
  {
    id: 'broker-leader',
    number: 1,
    title: 'kill -9 of the data partitions\' leader, then its restart',
    shows:
      'Leadership of every data and idempotency partition moves to a follower after broker.session.timeout.ms; transactions open on the dead leader abort, clients retry with the same key, nothing acknowledged is lost and nothing is written twice; the restarted broker rejoins the ISRs without disturbing the load.',
  },
  {
    id: 'coordinator',
    number: 2,
    title: 'kill -9 of the broker hosting our transaction coordinator, then its restart',
    shows:
      'The cluster has one __transaction_state partition, so one broker coordinates every transactional id; it is killed (it leads no data or idempotency partition). The coordinator moves to a follower; commits in flight are completed or aborted by the new coordinator, and retries land exactly once.',
  },
  {
    id: 'gateway-kill',
    number: 3,
    title: 'kill -9 of a gateway mid-load, restarted with the same instance id',
    shows:
      'Requests cut off by the crash are retried against the restarted gateway; its producers re-initialise the same transactional ids, which fences the dead process\'s open transactions, and the idempotency topic answers keys whose commit had completed.',
  },
  {
    id: 'rolling-restart',
    number: 4,
    title: 'rolling restart of two gateways with SIGTERM, clients spraying over both',
    shows:
      'A SIGTERM drains the gateway (in-flight transactions finish, new ones get 503 with Connection: close) and it exits 0; clients retry at the other instance, so acknowledgements never stop for long.',
  },
  {
    id: 'zombie',
    number: 5,
    title: 'a zombie: a second gateway started with the instance id of a live one',
    shows:
      'Two processes share transactional ids: each InitProducerId fences the other\'s producers (a fencing storm, logged as an error). Throughput suffers while both run, but fencing keeps every write exactly-once; the survivor recovers by itself once the zombie stops.',
  },
  {
    id: 'race',
    number: 6,
    title: 'two gateways with different ids receiving the same keys at the same moment',
    shows:
      'Each request goes to both gateways at once (--race): for every key exactly one transaction commits and the other gateway replays its outcome; no key is written twice and no two answers disagree.',
  },
  {
    id: 'freeze',
    number: 7,
    title: 'the whole cluster unreachable for 30 s (SIGSTOP all brokers, then SIGCONT)',
    shows:
      'With every broker frozen (connections stay open, nothing answers), /readyz turns 503 and names Kafka, and after SIGCONT the gateway recovers by itself, without a restart. Meanwhile requests get answers bounded by the gateway\'s own timeouts (new ones a 503 after the acquire or metadata timeout, in-flight ones once the commit\'s retry deadline passes or the cluster returns); a new client arrives every 2 s to measure it.',
  },
  {
    id: 'topic-delete',
    number: 8,
    title: 'a data topic deleted under load',
    shows:
      'Requests write one record to a surviving topic and one to a topic that gets deleted mid-load. Once deleted, requests get a definitive 404 and nothing of them is written; a request is never visible in the surviving topic without its acknowledgement (no phantom, no duplicate) and the gateway keeps serving the other topic.',
  },
];

export interface ModeParams {
  /** Clients per load. */
  concurrency: number;
  recordsPerRequest: number;
  partitions: number;
  poolSize: number;
  /** Load before the fault: at least this long and this many acknowledgements. */
  warmupMs: number;
  warmupAcks: number;
  /** The load keeps running this long after the last recovery. */
  tailMs: number;
  /** How long the zombie runs beside the original; how long the race runs. */
  zombieMs: number;
  raceMs: number;
  freezeMs: number;
  recovery: RecoveryRule;
  /** A fault after which nothing is acknowledged for this long fails the scenario. */
  progressTimeoutMs: number;
  /** Recovery to the baseline rate is waited for this long, then reported as not reached. */
  recoveryTimeoutMs: number;
}

export const QUICK: ModeParams = {
  concurrency: 16,
  recordsPerRequest: 2,
  partitions: 3,
  poolSize: 8,
  warmupMs: 4_000,
  warmupAcks: 100,
  tailMs: 0,
  zombieMs: 10_000,
  raceMs: 12_000,
  freezeMs: 30_000,
  recovery: { ...RECOVERY_RULE, holdMs: 3_000 },
  progressTimeoutMs: 120_000,
  recoveryTimeoutMs: 60_000,
};

export const FULL: ModeParams = {
  concurrency: 32,
  recordsPerRequest: 2,
  partitions: 3,
  poolSize: 8,
  warmupMs: 15_000,
  warmupAcks: 500,
  tailMs: 10_000,
  zombieMs: 30_000,
  raceMs: 60_000,
  freezeMs: 30_000,
  recovery: { ...RECOVERY_RULE, holdMs: 5_000 },
  progressTimeoutMs: 180_000,
  recoveryTimeoutMs: 120_000,
};

/** The verifier's anomaly counts (VerifyReport.anomalies): each must be 0. */
export type AnomalyCounts = VerifyReport['anomalies'];

export interface RecoveryFigure {
  event: string;
  /** When the event happened, ms from the load's start. */
  atMs: number;
  /** From the event until the acknowledgement rate was back (RECOVERY_RULE); null: not within the wait. */
  recoveredMs: number | null;
  /** From the event to the first 200 after it. */
  firstAckMs: number | null;
  /** The longest stretch without a 200 from the event to its recovery. */
  gapMs: number;
}

export interface ScenarioResult {
  id: ScenarioId;
  number: number;
  title: string;
  /** OK: ran to the end, no anomaly. FAILED: an anomaly. ERROR: the scenario could not complete. */
  verdict: 'OK' | 'FAILED' | 'INCONCLUSIVE' | 'ERROR';
  error?: string | undefined;
  anomalies: AnomalyCounts;
  requests: VerifyReport['requests'];
  recordsRead: number;
  /** Every attempt's answer (all loads of the scenario), e.g. {"200": 5000, "503 TXGATE_KAFKA_UNAVAILABLE": 12}. */
  answers: Record<string, number>;
  /** The answers other than 200. */
  errorAnswers: Record<string, number>;
  /** The verifier's longest time without any 200 (main load), and where it lay relative to the first fault. */
  longestGap: { ms: number; fromFaultMs: number | null };
  baselinePerSecond: number;
  acknowledgedPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  recovery: RecoveryFigure[];
  durationMs: number;
  /** The machine's 1-minute load average when the scenario started and ended (the machine is shared). */
  loadAverage: { start: number; end: number };
  timeline: Array<{ atMs: number; what: string }>;
  /** Answers per second over the timeline: 200s by load, the others by kind (the report's figure). */
  series?: ScenarioSeries | undefined;
  /** Scenario-specific figures (freeze answer times, exit codes, coordinators...). */
  figures: Record<string, unknown>;
  transactions: TransactionsView | { checked: false; reason: string };
  /** Gateway log lines at warn and above, counted by level and message. */
  gatewayLogs: Record<string, Record<string, number>>;
  problems: string[];
  examples: Example[];
}

export interface FaultRunOptions {
  mode: 'quick' | 'full';
  params?: Partial<ModeParams> | undefined;
  /** First of the 6 cluster ports (default 29092). */
  basePort: number;
  /** The cluster's state lives in a new directory under this one (deleted at the end). */
  workDir: string;
  /**
   * Kafka's TransactionsCommand (ongoing and hanging transactions, id count): after each
   * scenario (per-scenario), once for all at the end (at-end: cheaper), or not at all.
   */
  transactionsCheck?: 'per-scenario' | 'at-end' | 'off' | undefined;
  log?: ((line: string) => void) | undefined;
}

const ZERO: AnomalyCounts = {
  lost: 0,
  duplicated: 0,
  partial: 0,
  phantom: 0,
  misplaced: 0,
  corrupt: 0,
  unexpected: 0,
  conflicting: 0,
  ongoingTransactions: 0,
  hangingTransactions: 0,
  excessTransactionalIds: 0,
};

const loadAverage = (): number => Math.round((os.loadavg()[0] ?? 0) * 100) / 100;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs scenarios one after the other on one cluster. start(), run() each, then close(). */
export class FaultHarness {
  readonly params: ModeParams;
  readonly runTag = `f${Date.now().toString(36)}`;
  readonly results: ScenarioResult[] = [];
  cluster!: FaultCluster;
  clusterStartMs = 0;
  private stateDir = '';
  private readonly liveGateways = new Set<GatewayProcess>();
  private readonly log: (line: string) => void;
  private closed = false;

  constructor(readonly opts: FaultRunOptions) {
    this.params = { ...(opts.mode === 'full' ? FULL : QUICK), ...opts.params };
    this.log = opts.log ?? (() => {});
  }

  get transactionsCheck(): 'per-scenario' | 'at-end' | 'off' {
    return this.opts.transactionsCheck ?? (this.opts.mode === 'full' ? 'per-scenario' : 'at-end');
  }

  async start(): Promise<void> {
    // The port lock only coordinates processes that share its directory; a cluster of another
    // checkout (or chroot) on the same ports would make cluster-start fail: wait for them.
    const ports = Array.from({ length: 6 }, (_, i) => this.opts.basePort + i);
    if ((await busyPorts(ports)).length > 0) {
      this.log(`waiting for ports ${ports[0]}-${ports[5]}: in use by another process (${(await busyPorts(ports)).join(', ')})`);
      const deadline = performance.now() + 20 * 60_000;
      while ((await busyPorts(ports)).length > 0) {
        if (performance.now() > deadline) throw new Error(`ports ${(await busyPorts(ports)).join(', ')} stayed in use for 20 minutes`);
        await sleep(1_000);
      }
    }
    this.stateDir = mkdtempSync(path.join(this.opts.workDir, 'txgate-faults-'));
    this.cluster = new FaultCluster(this.stateDir, this.opts.basePort);
    const t = performance.now();
    this.log(`starting a 3-node cluster on 127.0.0.1:${this.opts.basePort}-${this.opts.basePort + 5}`);
    await this.cluster.start();
    this.clusterStartMs = Math.round(performance.now() - t);
    this.log(`cluster up in ${(this.clusterStartMs / 1000).toFixed(1)} s: ${this.cluster.bootstrap}`);
  }

  /** Stops every gateway still running, thaws and stops the cluster, deletes its data. Never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.killGatewaysNow();
    await Promise.all([...this.liveGateways].map((g) => g.kill('SIGKILL', 10_000).catch(() => {})));
    if (this.cluster) await this.cluster.stop();
    if (this.stateDir) rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** For a signal handler: SIGKILL every gateway and SIGCONT the brokers, synchronously. */
  killGatewaysNow(): void {
    for (const g of this.liveGateways) {
      if (g.alive && g.pid !== undefined) {
        try {
          process.kill(g.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    this.cluster?.thawAll();
  }

  track(g: GatewayProcess): void {
    this.liveGateways.add(g);
    void g.exited.then(() => this.liveGateways.delete(g));
  }

  async run(id: ScenarioId): Promise<ScenarioResult> {
    const info = SCENARIOS.find((s) => s.id === id);
    if (!info) throw new Error(`no scenario ${id}`);
    this.log(`scenario ${info.number}: ${info.title}`);
    let notReady: unknown;
    try {
      const started = await this.cluster.ensureAllRunning();
      if (started.length > 0) this.log(`restarted node(s) ${started.join(', ')} left down by an earlier scenario`);
      await this.cluster.waitFor(() => this.cluster.inSync([TRANSACTION_STATE_TOPIC]), 120_000, 'every __transaction_state replica to be in sync');
    } catch (err) {
      notReady = new Error(`the cluster is not whole before the scenario: ${err instanceof Error ? err.message : String(err)}`);
    }
    const run = new ScenarioRun(this, info);
    const result = await run.execute(
      notReady === undefined
        ? IMPLEMENTATIONS[id]
        : async () => {
            throw notReady;
          },
    );
    this.results.push(result);
    this.log(`scenario ${info.number}: ${summaryLine(result)}`);
    return result;
  }

  /**
   * With transactionsCheck 'at-end': one TransactionsCommand pass for every scenario run so far;
   * each scenario's ids and topics carry its tag, so what is found is charged to its scenario.
   */
  async checkTransactionsAtEnd(): Promise<void> {
    if (this.transactionsCheck !== 'at-end' || this.results.length === 0) return;
    const t = performance.now();
    this.log("Kafka's TransactionsCommand: our transactions and hanging ones, for every scenario");
    let view: TransactionsView;
    try {
      view = await checkTransactions({
        bootstrap: this.cluster.bootstrap,
        prefix: `txgate-${this.runTag}-`,
        brokers: [...NODES],
        topics: this.results.flatMap((r) => (r.figures.topics as string[] | undefined) ?? []),
        settleMs: 30_000,
      });
    } catch (err) {
      for (const r of this.results) r.transactions = { checked: false, reason: `TransactionsCommand failed: ${String(err)}` };
      return;
    }
    if (!view.checked) {
      for (const r of this.results) r.transactions = view;
      return;
    }
    // the ids each scenario left with the coordinators (the view above only counts them all)
    let listed: Array<{ transactionalId: string }> = [];
    try {
      listed = await this.cluster.transactions(`txgate-${this.runTag}-`);
    } catch (err) {
      for (const r of this.results) r.transactions = { checked: false, reason: `TransactionsCommand list failed: ${String(err)}` };
      return;
    }
    this.log(`transactions checked in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    for (const r of this.results) {
      const prefix = `txgate-${scenarioTag(this.runTag, r.number)}-`;
      const topics = new Set((r.figures.topics as string[] | undefined) ?? []);
      const own: TransactionsView = {
        ...view,
        prefix,
        ongoing: view.ongoing.filter((x) => x.transactionalId.startsWith(prefix)),
        hanging: view.hanging.filter((h) => topics.has(h.topic)),
        hangingOnOtherTopics: [],
        transactionalIds: listed.filter((x) => x.transactionalId.startsWith(prefix)).length,
      };
      applyTransactions(r, own, (r.figures.expectedTransactionalIds as number | undefined) ?? Infinity);
    }
  }
}

/** The ports something listens on, on 127.0.0.1. */
async function busyPorts(ports: number[]): Promise<number[]> {
  const inUse = await Promise.all(
    ports.map(
      (port) =>
        new Promise<boolean>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port });
          socket.setTimeout(1_000);
          socket.once('connect', () => {
            socket.destroy();
            resolve(true);
          });
          socket.once('timeout', () => {
            socket.destroy();
            resolve(true);
          });
          socket.once('error', () => resolve(false));
        }),
    ),
  );
  return ports.filter((_, i) => inUse[i]);
}

function scenarioTag(runTag: string, n: number): string {
  return `${runTag}-s${n}`;
}

/** Charges what TransactionsCommand found to the result and re-decides its verdict. */
function applyTransactions(r: ScenarioResult, view: TransactionsView, expectedIds: number): void {
  r.transactions = view;
  if (!view.checked) return;
  r.anomalies.ongoingTransactions = view.ongoing.length;
  r.anomalies.hangingTransactions = view.hanging.length;
  r.anomalies.excessTransactionalIds = Math.max(0, view.transactionalIds - expectedIds);
  if (r.verdict !== 'ERROR') r.verdict = Object.values(r.anomalies).some((n) => n > 0) ? 'FAILED' : r.verdict;
}

interface LoadHandle {
  name: string;
  /** performance.now() when the load started. */
  startedAt: number;
  controller: AbortController;
  done: Promise<LoadResult>;
  /** Not marked on the timeline (many small loads). */
  quiet: boolean;
  result?: LoadResult;
}

type Implementation = (run: ScenarioRun) => Promise<void>;

type AttemptFilter = (a: Attempt) => boolean;

/** One scenario's state: its gateways, loads, attempt timeline and the marks on it. */
export class ScenarioRun {
  readonly params: ModeParams;
  readonly cluster: FaultCluster;
  readonly recorder = new AttemptRecorder();
  readonly tag: string;
  readonly t0 = performance.now();
  readonly loadAverageAtStart = loadAverage();
  readonly timeline: Array<{ atMs: number; what: string }> = [];
  readonly recovery: RecoveryFigure[] = [];
  readonly figures: Record<string, unknown> = {};
  readonly gateways: GatewayProcess[] = [];
  readonly loads: LoadHandle[] = [];
  readonly topics: string[] = [];
  readonly instanceIds = new Set<string>();
  idempotencyTopic: string;
  baseline = 0;
  /** Check only this topic's records (topic-delete): the requests' records elsewhere are left out of the check. */
  restrictCheckTo: string | undefined;
  /** The first fault, on performance.now()'s clock. */
  faultAt: number | undefined;
  private readonly log: (line: string) => void;

  constructor(
    readonly harness: FaultHarness,
    readonly info: ScenarioInfo,
  ) {
    this.params = harness.params;
    this.cluster = harness.cluster;
    this.tag = scenarioTag(harness.runTag, info.number);
    this.idempotencyTopic = `faults-${this.tag}-idempotency`;
    this.log = (line) => harness.opts.log?.(`  [${info.number}] ${line}`);
  }

  /** A name unique to this scenario. */
  name(what: string): string {
    return `faults-${this.tag}-${what}`;
  }

  /** An instance id of this scenario (its transactional ids start with txgate-<tag>-). */
  instanceId(what: string): string {
    return `${this.tag}-${what}`;
  }

  /** Marks an event on the timeline; returns its time (performance.now()). */
  mark(what: string): number {
    const now = performance.now();
    this.timeline.push({ atMs: Math.round(now - this.t0), what });
    this.log(`${((now - this.t0) / 1000).toFixed(1)} s: ${what}`);
    return now;
  }

  /** Marks the first fault (the reference for the longest gap's position). */
  fault(what: string): number {
    const at = this.mark(what);
    this.faultAt ??= at;
    return at;
  }

  async dataTopic(opts: { leaders?: ClusterNode[]; name?: string } = {}): Promise<string> {
    const topic = this.name(opts.name ?? 'data');
    await this.cluster.createTopic(topic, { partitions: this.params.partitions, ...(opts.leaders ? { leaders: opts.leaders } : {}) });
    this.topics.push(topic);
    return topic;
  }

  /** Pre-creates the idempotency topic (as the gateway would: compact,delete) to choose its leaders. */
  async idempotencyTopicLedBy(leaders: ClusterNode[]): Promise<void> {
    await this.cluster.createTopic(this.idempotencyTopic, {
      partitions: 3,
      leaders,
      config: { 'cleanup.policy': 'compact,delete', 'retention.ms': String(25 * 3_600_000), 'segment.ms': String(3_600_000) },
    });
  }

  /** Spawns `txgate serve` (port: a new free one unless given) and waits until /readyz says ready. */
  async startGateway(label: string, instanceId: string, opts: { port?: number; wait?: boolean } = {}): Promise<GatewayProcess> {
    const port = opts.port ?? (await freePort());
    const gw = new GatewayProcess({
      label,
      brokers: this.cluster.bootstrap,
      port,
      instanceId,
      args: ['--idempotency-topic', this.idempotencyTopic, '--pool-size', String(this.params.poolSize)],
    });
    this.gateways.push(gw);
    this.instanceIds.add(instanceId);
    this.harness.track(gw);
    if (opts.wait !== false) await gw.ready(180_000);
    return gw;
  }

  /** The verifier's load, started now and running until stopLoad (or the scenario's end). */
  startLoad(name: string, gateways: string[], mode: GatewayMode, extra: Partial<LoadOptions> = {}, opts: { quiet?: boolean } = {}): LoadHandle {
    this.recorder.install();
    const controller = new AbortController();
    const startedAt = performance.now();
    const done = runLoad({
      gateways,
      mode,
      topics: extra.topics ?? this.topics,
      concurrency: this.params.concurrency,
      recordsPerRequest: this.params.recordsPerRequest,
      // an hour: the scenario stops it (the signal) once it has seen what it waits for
      durationMs: 3_600_000,
      giveUpMs: 300_000,
      attemptTimeoutMs: 10_000,
      keyPrefix: this.keyPrefix(name),
      signal: controller.signal,
      ...extra,
    });
    const handle: LoadHandle = { name, startedAt, controller, done, quiet: opts.quiet === true };
    void done.then((r) => (handle.result = r), () => {});
    this.loads.push(handle);
    if (!handle.quiet) this.mark(`load "${name}" started: ${extra.concurrency ?? this.params.concurrency} clients, ${mode}, ${gateways.length} gateway(s)`);
    return handle;
  }

  /**
   * Stops a load: no new requests; requests in flight finish their current attempt (one that
   * needs another attempt ends undecided). A load stopped while the service is healthy ends
   * with every request decided.
   */
  async stopLoad(load: LoadHandle): Promise<LoadResult> {
    if (!load.controller.signal.aborted) {
      load.controller.abort();
      if (!load.quiet) this.mark(`load "${load.name}" stopped`);
    }
    return load.done;
  }

  /** Selects the attempts of one load (by its key prefix). */
  ofLoad(name: string): AttemptFilter {
    const prefix = this.keyPrefix(name);
    return (a) => a.key?.startsWith(prefix) === true;
  }

  /** Selects the attempts sent to one gateway. */
  ofGateway(url: string): AttemptFilter {
    return (a) => a.gateway === url;
  }

  keyPrefix(load: string): string {
    return `faults-${this.tag}-${load}-`;
  }

  /** Waits for the warm-up; sets the baseline acknowledgement rate from its second half. */
  async warmUp(which?: AttemptFilter): Promise<number> {
    const start = performance.now();
    await this.until(
      () => performance.now() - start >= this.params.warmupMs && this.recorder.acksBetween(start, Infinity, which) >= this.params.warmupAcks,
      this.params.progressTimeoutMs,
      `${this.params.warmupAcks} acknowledgements during the warm-up`,
    );
    const now = performance.now();
    this.baseline = ratePerSecond(this.recorder.acksOf(which), start + (now - start) / 2, now);
    this.mark(`warm-up done: baseline ${this.baseline.toFixed(0)} acknowledged requests/s`);
    return this.baseline;
  }

  /**
   * Waits until the service is back after `event` (at `from`): first any acknowledgement (none
   * for progressTimeoutMs fails the scenario), then the rate rule (not reached within
   * recoveryTimeoutMs is reported as null, not a failure).
   */
  async waitRecovered(event: string, from: number, which?: AttemptFilter): Promise<RecoveryFigure> {
    const acks = (): number[] => this.recorder.acksOf(which);
    await this.until(() => firstAckAfter(acks(), from) !== undefined, this.params.progressTimeoutMs, `an acknowledgement ${event}`);
    const deadline = performance.now() + this.params.recoveryTimeoutMs;
    let at: number | undefined;
    for (;;) {
      at = recoveredAt(acks(), from, performance.now(), this.baseline, this.params.recovery);
      if (at !== undefined || performance.now() > deadline) break;
      await sleep(100);
    }
    const list = acks();
    const first = firstAckAfter(list, from);
    const figure: RecoveryFigure = {
      event,
      atMs: Math.round(from - this.mainLoadStart()),
      recoveredMs: at === undefined ? null : Math.round(at - from),
      firstAckMs: first === undefined ? null : Math.round(first - from),
      gapMs: Math.round(longestGap(list, from, at ?? performance.now()).ms),
    };
    this.recovery.push(figure);
    this.mark(
      figure.recoveredMs === null
        ? `${event}: acknowledgements resumed after ${figure.firstAckMs} ms but the rate stayed under ${this.params.recovery.fraction * 100}% of the baseline`
        : `${event}: recovered after ${figure.recoveredMs} ms (first 200 after ${figure.firstAckMs} ms, longest gap ${figure.gapMs} ms)`,
    );
    return figure;
  }

  /** Keeps the load running for tailMs more (full mode): steady state after the recovery. */
  async tail(): Promise<void> {
    if (this.params.tailMs > 0) await sleep(this.params.tailMs);
  }

  mainLoadStart(): number {
    return this.loads[0]?.startedAt ?? this.t0;
  }

  async until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (await condition()) return;
      if (performance.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
      await sleep(100);
    }
  }

  /** The scenario's transactional ids as Kafka's TransactionsCommand lists them, with their coordinators. */
  async coordinatorsOf(instanceId: string): Promise<Map<string, number>> {
    const ids = new Set(pooledTransactionalIds(instanceId, this.params.poolSize));
    const listed = await this.cluster.transactions(`txgate-${instanceId}-`);
    return new Map(listed.filter((t) => ids.has(t.transactionalId)).map((t) => [t.transactionalId, t.coordinator]));
  }

  async execute(impl: Implementation): Promise<ScenarioResult> {
    let error: unknown;
    try {
      await impl(this);
    } catch (err) {
      error = err;
      this.mark(`scenario failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    // Whatever happened: the cluster whole again, so that what was written can be read back.
    this.cluster.thawAll();
    if (error) {
      try {
        const restarted = await this.cluster.ensureAllRunning();
        if (restarted.length > 0) this.mark(`restarted node(s) ${restarted.join(', ')} for the check`);
      } catch (err) {
        this.mark(`could not restart the cluster's nodes: ${String(err)}`);
      }
    }
    const loads: LoadResult[] = [];
    for (const l of this.loads) {
      try {
        loads.push(await this.stopLoad(l));
      } catch (err) {
        error ??= err;
      }
    }
    this.recorder.uninstall();
    // Gateways drain and stop before the check: none of their transactions stays open.
    const exits: Record<string, string> = {};
    for (const g of this.gateways) {
      if (!g.alive) continue;
      const at = performance.now();
      const exit = await g.kill('SIGTERM', 60_000).catch(async (err: unknown) => {
        await g.kill('SIGKILL', 10_000).catch(() => {});
        return { code: null, signal: `SIGKILL after: ${String(err)}` };
      });
      exits[g.label] = `${exit.signal ? String(exit.signal) : `exit ${exit.code}`} after ${Math.round(performance.now() - at)} ms`;
    }
    this.figures.finalStop = exits;
    this.mark(`gateways stopped: ${JSON.stringify(exits)}`);
    this.figures.topics = this.topics;
    this.figures.transactionalIds = [...this.instanceIds].flatMap((i) => pooledTransactionalIds(i, this.params.poolSize));
    this.figures.expectedTransactionalIds = this.instanceIds.size * this.params.poolSize;

    let reports: VerifyReport[] = [];
    const restrict = this.restrictCheckTo;
    try {
      reports = await checkTogether(restrict === undefined ? loads : loads.map((l) => onlyTopic(l, restrict)), this.cluster.bootstrap);
    } catch (err) {
      error ??= err;
    }
    this.mark(`read back and checked ${reports.reduce((n, r) => n + r.records.read, 0)} records`);
    const result = this.result(loads, reports, error);
    if (this.harness.transactionsCheck === 'per-scenario' && error === undefined) {
      try {
        const view = await checkTransactions({
          bootstrap: this.cluster.bootstrap,
          prefix: `txgate-${this.tag}-`,
          brokers: [...NODES],
          topics: this.topics,
          settleMs: 30_000,
        });
        applyTransactions(result, view, this.instanceIds.size * this.params.poolSize);
      } catch (err) {
        result.transactions = { checked: false, reason: `TransactionsCommand failed: ${String(err)}` };
      }
    }
    return result;
  }

  private result(loads: LoadResult[], reports: VerifyReport[], error: unknown): ScenarioResult {
    const anomalies: AnomalyCounts = { ...ZERO };
    const requests = { sent: 0, acknowledged: 0, failed: 0, undecided: 0, undecidedPresent: 0, undecidedAbsent: 0 };
    let recordsRead = 0;
    const problems: string[] = [];
    const examples: Example[] = [];
    for (const r of reports) {
      for (const k of Object.keys(anomalies) as Array<keyof AnomalyCounts>) anomalies[k] += r.anomalies[k];
      for (const k of Object.keys(requests) as Array<keyof typeof requests>) requests[k] += r.requests[k];
      recordsRead += r.records.read;
      problems.push(...r.problems);
      examples.push(...r.examples);
    }
    for (const [name, fn] of Object.entries(this.extraChecks)) {
      const found = fn(reports);
      if (found) problems.push(`${name}: ${found}`);
    }
    const main = loads[0];
    const answers = countByAnswer(this.recorder.attempts);
    const errorAnswers = Object.fromEntries(Object.entries(answers).filter(([k]) => k !== '200'));
    const gap = main?.stats.longestGapWithoutAck;
    const mainStart = this.mainLoadStart();
    const anomalous = Object.values(anomalies).some((n) => n > 0);
    const verdict: ScenarioResult['verdict'] = error ? 'ERROR' : anomalous ? 'FAILED' : reports.some((r) => r.verdict === 'INCONCLUSIVE') ? 'INCONCLUSIVE' : 'OK';
    if (anomalous && error) problems.push('anomalies found as well (see anomalies)');
    const gatewayLogs: Record<string, Record<string, number>> = {};
    for (const g of this.gateways) gatewayLogs[g.label] = logSummary(g.logs);
    return {
      id: this.info.id,
      number: this.info.number,
      title: this.info.title,
      verdict,
      ...(error ? { error: error instanceof Error ? error.message : String(error) } : {}),
      anomalies,
      requests,
      recordsRead,
      answers,
      errorAnswers,
      longestGap: {
        ms: gap?.ms ?? 0,
        fromFaultMs: gap && this.faultAt !== undefined ? Math.round(mainStart + gap.fromMs - this.faultAt) : null,
      },
      baselinePerSecond: Math.round(this.baseline),
      acknowledgedPerSecond: main?.stats.acknowledgedPerSecond ?? 0,
      latencyMs: main?.stats.latencyMs ?? { p50: 0, p99: 0, max: 0 },
      recovery: this.recovery,
      durationMs: main?.stats.durationMs ?? 0,
      loadAverage: { start: this.loadAverageAtStart, end: loadAverage() },
      timeline: this.timeline,
      series: scenarioSeries(
        this.recorder.attempts,
        this.t0,
        this.loads.filter((l) => !l.quiet).map((l) => ({ name: l.name, keyPrefix: this.keyPrefix(l.name) })),
        { mainLoadStartMs: this.mainLoadStart() - this.t0 },
      ),
      figures: this.figures,
      transactions: { checked: false, reason: this.harness.transactionsCheck === 'off' ? 'not asked for' : 'not checked yet' },
      gatewayLogs,
      problems,
      examples: examples.slice(0, 20),
    };
  }

  /** Scenario-specific checks on the reports: a non-empty string is a problem (INCONCLUSIVE). */
  readonly extraChecks: Record<string, (reports: VerifyReport[]) => string | undefined> = {};
}

/**
 * The verifier's check phase (src/verify/run.ts checkLoad, without the transactions part) for
 * several loads on the same topics at once: one read of the topics instead of one per load.
 * Waits until every acknowledged offset is readable (read_committed), reads the records carrying
 * any load's key prefix, and judges each load on its own records.
 */
export async function checkTogether(loads: LoadResult[], brokers: string, timeoutMs = 120_000): Promise<VerifyReport[]> {
  if (loads.length === 0) return [];
  const topics = [...new Set(loads.flatMap((l) => l.topics))];
  const prefixes = loads.map((l) => Buffer.from(runKeyPrefix(l.keyPrefix, l.runId)));
  const known = new Set(topics);
  const through: TopicPosition[] = [];
  for (const l of loads) {
    for (const r of l.requests) {
      for (const o of r.outcomes) {
        if (o.kind !== 'acknowledged') continue;
        for (const p of o.positions) if (known.has(p.topic) && Number.isInteger(p.partition) && /^\d+$/.test(p.offset)) through.push(p);
      }
    }
  }
  const problems: string[] = [];
  const lagging = await waitForEndOffsets(brokers, topics, through, { isolation: 'read_committed', timeoutMs });
  if (lagging.length > 0) problems.push(describeLagging(lagging));
  const records = await readTopics(brokers, topics, {
    isolation: 'read_committed',
    keep: (r) => r.key !== null && prefixes.some((p) => r.key!.subarray(0, p.length).equals(p)),
    timeoutMs,
  });
  return loads.map((load, i) => {
    const prefix = prefixes[i]!;
    const read: ReadRecord[] = records
      .filter((r) => r.key!.subarray(0, prefix.length).equals(prefix))
      .map((r) => ({ topic: r.topic, partition: r.partition, offset: r.offset, key: r.key?.toString('utf8') ?? null, value: r.value?.toString('utf8') ?? null }));
    return buildReport({ load, check: check(load.requests, read), transactions: { checked: false, reason: 'checked for the scenario' }, problems });
  });
}

/**
 * The load as if it had written only `topic`: each request keeps its records on that topic, and
 * each 200 the positions of those records (a 200 lists positions in the request's record order).
 */
export function onlyTopic(load: LoadResult, topic: string): LoadResult {
  return {
    ...load,
    topics: [topic],
    requests: load.requests.map((r) => {
      const keep = r.records.map((rec, i) => (rec.topic === topic ? i : -1)).filter((i) => i >= 0);
      return {
        ...r,
        records: keep.map((i) => r.records[i]!),
        outcomes: r.outcomes.map((o) => (o.kind === 'acknowledged' ? { ...o, positions: keep.map((i) => o.positions[i]!).filter((p) => p !== undefined) } : o)),
      };
    }),
  };
}

/** A gateway's log lines at warn and above, counted by level and message. */
export function logSummary(lines: string[]): Record<string, number> {
  const names: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' };
  const counts: Record<string, number> = {};
  for (const line of lines) {
    let what: string;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      if ((entry.level ?? 0) < 40) continue;
      what = `${(entry.level !== undefined && names[entry.level]) || String(entry.level)}: ${entry.msg ?? ''}`;
    } catch {
      what = `(not JSON) ${line.slice(0, 120)}`;
    }
    counts[what] = (counts[what] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).sort(([, a], [, b]) => b - a));
}

export function summaryLine(r: ScenarioResult): string {
  const bad = Object.entries(r.anomalies).filter(([, n]) => n > 0);
  const rec = r.recovery.map((x) => `${x.event} ${x.recoveredMs === null ? 'not recovered' : `${x.recoveredMs} ms`}`).join(', ');
  return (
    `${r.verdict}${r.error ? ` (${r.error})` : ''}; anomalies ${bad.length === 0 ? '0' : bad.map(([k, n]) => `${k}=${n}`).join(' ')}; ` +
    `${r.requests.sent} requests (${r.requests.acknowledged} acknowledged, ${r.requests.failed} failed, ${r.requests.undecided} undecided); ` +
    `errors seen ${JSON.stringify(r.errorAnswers)}; longest gap ${r.longestGap.ms} ms; recovery: ${rec || 'n/a'}`
  );
}

// ------------------------------------------------------------------------------------------------
// The scenarios

/** The broker leading the one __transaction_state partition: it coordinates every transactional id. */
async function coordinatorNode(run: ScenarioRun): Promise<ClusterNode> {
  const leader = (await run.cluster.coordinatorLeaders()).get(0) ?? -1;
  if (leader < 1 || leader > 3) throw new Error(`${TRANSACTION_STATE_TOPIC} has no leader`);
  return leader as ClusterNode;
}

/** Kills `node`, waits for recovery, restarts it, waits again, then for the ISRs to be whole. */
async function killAndRestartBroker(run: ScenarioRun, node: ClusterNode, why: string, moved: { topic: string; partition: number; what: string }): Promise<void> {
  const killedAt = run.fault(`kill -9 node ${node} (${why})`);
  await run.cluster.kill(node);
  await run.until(
    async () => {
      const leader = await run.cluster.leaderOf(moved.topic, moved.partition);
      return leader > 0 && leader !== node;
    },
    run.params.progressTimeoutMs,
    `${moved.what} to get a leader other than node ${node}`,
  );
  const movedAt = run.mark(`${moved.what} led by node ${await run.cluster.leaderOf(moved.topic, moved.partition)}`);
  run.figures.leaderMovedMs = Math.round(movedAt - killedAt);
  await run.waitRecovered('after the kill', killedAt);
  const restartAt = run.mark(`restarting node ${node}`);
  await run.cluster.restart(node);
  run.figures.brokerRestartMs = Math.round(run.mark(`node ${node} serves again`) - restartAt);
  await run.waitRecovered('after the restart', restartAt);
  await run.until(() => run.cluster.inSync([...run.topics, run.idempotencyTopic, TRANSACTION_STATE_TOPIC]), run.params.progressTimeoutMs, `node ${node} back in every ISR`);
  run.figures.backInSyncMs = Math.round(run.mark(`node ${node} back in every ISR`) - restartAt);
  await run.tail();
}

const brokerLeader: Implementation = async (run) => {
  // Our coordinator elsewhere: this scenario is about partition leadership only.
  const coordinatorAt = await coordinatorNode(run);
  const victim = NODES.find((n) => n !== coordinatorAt)!;
  const topic = await run.dataTopic({ leaders: Array.from({ length: run.params.partitions }, () => victim) });
  await run.idempotencyTopicLedBy([victim, victim, victim]);
  const instanceId = run.instanceId('gw');
  const gw = await run.startGateway('gateway', instanceId);
  const coordinators = [...new Set((await run.coordinatorsOf(instanceId)).values())];
  run.figures.killed = victim;
  run.figures.coordinators = coordinators;
  run.mark(
    `node ${victim} leads every partition of the data and idempotency topics; Kafka's TransactionsCommand: our transactional ids are coordinated by node ${coordinators.join(', ')}`,
  );
  if (coordinators.includes(victim)) throw new Error(`node ${victim} coordinates our transactional ids too: the scenario would mix two faults`);
  run.startLoad('main', [gw.url], 'round-robin');
  await run.warmUp();
  await killAndRestartBroker(run, victim, 'leader of every data and idempotency partition', { topic, partition: 0, what: `${topic} partition 0` });
};

const coordinator: Implementation = async (run) => {
  const predicted = await coordinatorNode(run);
  const others = NODES.filter((n) => n !== predicted);
  await run.dataTopic({ leaders: Array.from({ length: run.params.partitions }, (_, i) => others[i % others.length]!) });
  await run.idempotencyTopicLedBy([others[0]!, others[1]!, others[0]!]);
  const instanceId = run.instanceId('gw');
  const gw = await run.startGateway('gateway', instanceId);
  const coordinators = await run.coordinatorsOf(instanceId);
  const distinct = [...new Set(coordinators.values())];
  run.figures.coordinators = distinct;
  if (distinct.length !== 1 || coordinators.size !== run.params.poolSize) {
    throw new Error(`expected all ${run.params.poolSize} transactional ids on one coordinator, Kafka lists ${JSON.stringify(Object.fromEntries(coordinators))}`);
  }
  const victim = distinct[0] as ClusterNode;
  run.figures.killed = victim;
  run.mark(
    `Kafka's TransactionsCommand: node ${victim} coordinates all ${coordinators.size} of our transactional ids (${TRANSACTION_STATE_TOPIC} leader: node ${predicted}); data and idempotency partitions are led by nodes ${others.join(', ')}`,
  );
  if (others.includes(victim)) throw new Error(`the coordinator moved to node ${victim}, which leads data partitions`);
  run.startLoad('main', [gw.url], 'round-robin');
  await run.warmUp();
  await killAndRestartBroker(run, victim, 'coordinator of every transactional id', { topic: TRANSACTION_STATE_TOPIC, partition: 0, what: `${TRANSACTION_STATE_TOPIC} partition 0` });
};

const gatewayKill: Implementation = async (run) => {
  await run.dataTopic();
  const instanceId = run.instanceId('gw');
  const gw = await run.startGateway('gateway', instanceId);
  run.startLoad('main', [gw.url], 'round-robin');
  await run.warmUp();
  const inFlight = run.recorder.inFlight;
  run.figures.inFlightAtKill = inFlight;
  const killedAt = run.fault(`kill -9 the gateway (${inFlight} attempts in flight)`);
  await gw.kill('SIGKILL');
  const spawnAt = run.mark('gateway restarting with the same instance id and port');
  await run.startGateway('gateway (restarted)', instanceId, { port: gw.port });
  run.figures.restartToReadyMs = Math.round(run.mark('restarted gateway ready') - spawnAt);
  await run.waitRecovered('after the kill', killedAt);
  await run.tail();
};

const rollingRestart: Implementation = async (run) => {
  await run.dataTopic();
  const a = await run.startGateway('gateway A', run.instanceId('a'));
  const b = await run.startGateway('gateway B', run.instanceId('b'));
  run.startLoad('main', [a.url, b.url], 'spray');
  await run.warmUp();
  const drains: Record<string, unknown> = {};
  for (const [label, gw] of [['A', a], ['B', b]] as const) {
    const inFlight = run.recorder.attempts.length;
    const at = run.fault(`SIGTERM gateway ${label}`);
    const exit = await gw.kill('SIGTERM');
    const exitedAt = run.mark(`gateway ${label} exited (${exit.signal ?? `code ${exit.code}`})`);
    const spawnAt = run.mark(`gateway ${label} restarting`);
    await run.startGateway(`gateway ${label} (restarted)`, run.instanceId(label.toLowerCase()), { port: gw.port });
    const readyAt = run.mark(`gateway ${label} ready again`);
    drains[label] = {
      exit: exit.signal ?? exit.code,
      drainMs: Math.round(exitedAt - at),
      restartToReadyMs: Math.round(readyAt - spawnAt),
      attemptsBefore: inFlight,
    };
    await run.waitRecovered(`after restarting ${label}`, at);
  }
  run.figures.restarts = drains;
  await run.tail();
};

const zombie: Implementation = async (run) => {
  await run.dataTopic();
  const instanceId = run.instanceId('gw');
  const live = await run.startGateway('gateway', instanceId);
  run.startLoad('main', [live.url], 'round-robin');
  await run.warmUp(run.ofGateway(live.url));
  const startedAt = run.fault('zombie started with the live gateway\'s instance id');
  const zombieGw = await run.startGateway('zombie', instanceId, { wait: false });
  let zombieLoad: LoadHandle | undefined;
  try {
    await zombieGw.ready(Math.max(60_000, run.params.zombieMs));
    run.figures.zombieReadyMs = Math.round(run.mark('zombie ready') - startedAt);
    zombieLoad = run.startLoad('zombie', [zombieGw.url], 'round-robin');
  } catch (err) {
    run.figures.zombieReadyMs = null;
    run.mark(`zombie never became ready: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const overlapFrom = performance.now();
  await sleep(run.params.zombieMs);
  const overlapTo = performance.now();
  run.figures.overlap = {
    ms: Math.round(overlapTo - overlapFrom),
    liveAcksPerSecond: Math.round(ratePerSecond(run.recorder.acksOf(run.ofGateway(live.url)), overlapFrom, overlapTo)),
    zombieAcksPerSecond: Math.round(ratePerSecond(run.recorder.acksOf(run.ofGateway(zombieGw.url)), overlapFrom, overlapTo)),
    answers: countByAnswer(run.recorder.attempts.filter((a) => a.end >= overlapFrom && a.end < overlapTo)),
  };
  if (zombieLoad) await run.stopLoad(zombieLoad);
  const stopAt = run.mark('SIGTERM the zombie');
  const exit = await zombieGw.kill('SIGTERM');
  run.figures.zombieExit = exit.signal ?? exit.code;
  run.mark(`zombie exited (${exit.signal ?? `code ${exit.code}`})`);
  await run.waitRecovered('live gateway after the zombie stopped', stopAt, run.ofGateway(live.url));
  await run.tail();
};

const race: Implementation = async (run) => {
  await run.dataTopic();
  const a = await run.startGateway('gateway A', run.instanceId('a'));
  const b = await run.startGateway('gateway B', run.instanceId('b'));
  const load = run.startLoad('main', [a.url, b.url], 'race');
  await run.warmUp();
  run.fault(`both gateways get every key at the same moment for ${run.params.raceMs / 1000} s more`);
  await sleep(run.params.raceMs);
  const result = await run.stopLoad(load);
  run.figures.replayed = result.stats.replayed;
  run.figures.perGateway = result.stats.perGateway;
  /** Requests that both gateways answered 200 (of each such pair, at most one answer may be a fresh commit). */
  run.figures.acknowledgedByBoth = result.requests.filter((r) => r.outcomes.length === 2 && r.outcomes.every((o) => o.kind === 'acknowledged')).length;
};

/** A new client arrives this often during the freeze. */
const ARRIVAL_EVERY_MS = 2_000;

const freeze: Implementation = async (run) => {
  await run.dataTopic();
  const gw = await run.startGateway('gateway', run.instanceId('gw'));
  // Long attempts: an answer that takes long is measured, not cut off by the client.
  const longAttempts = { attemptTimeoutMs: run.params.freezeMs + 60_000 };
  run.startLoad('main', [gw.url], 'round-robin', longAttempts);
  const probes: Array<{ start: number; end: number; status: number | string; detail?: string }> = [];
  let probing = true;
  const prober = (async () => {
    while (probing) {
      const start = performance.now();
      let status: number | string;
      let detail: string | undefined;
      try {
        const res = await fetch(`${gw.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
        status = res.status;
        const body = (await res.json().catch(() => ({}))) as { detail?: string };
        if (res.status !== 200) detail = body.detail;
      } catch (err) {
        status = err instanceof Error && err.name === 'TimeoutError' ? 'timeout' : 'connection-error';
      }
      probes.push({ start, end: performance.now(), status, ...(detail ? { detail } : {}) });
      await sleep(500);
    }
  })();
  try {
    await run.warmUp();
    const pids = run.cluster.freezeAll();
    const frozenAt = run.fault(`SIGSTOP all ${pids.length} brokers for ${run.params.freezeMs / 1000} s`);
    // The main load's clients all wait on attempts sent before the freeze. A new client arrives
    // every ARRIVAL_EVERY_MS during it (one verifier load each, retrying until definitive): how
    // the gateway answers new requests while the cluster is gone, and once it knows.
    const arrivals: string[] = [];
    while (performance.now() - frozenAt + ARRIVAL_EVERY_MS / 2 < run.params.freezeMs) {
      const name = `arrival${arrivals.length + 1}`;
      arrivals.push(name);
      run.startLoad(name, [gw.url], 'round-robin', { ...longAttempts, concurrency: 1 }, { quiet: true });
      await sleep(Math.max(0, Math.min(ARRIVAL_EVERY_MS, run.params.freezeMs - (performance.now() - frozenAt))));
    }
    run.mark(`${arrivals.length} new clients arrived during the freeze, one every ${ARRIVAL_EVERY_MS / 1000} s`);
    await sleep(Math.max(0, run.params.freezeMs - (performance.now() - frozenAt)));
    run.cluster.thawAll();
    const thawedAt = run.mark('SIGCONT all brokers');
    await run.waitRecovered('after SIGCONT', thawedAt);
    await run.until(() => probes.some((p) => p.start >= thawedAt && p.status === 200), run.params.progressTimeoutMs, '/readyz to answer 200 after SIGCONT');
    await run.tail();

    const summary = (xs: Attempt[]) => {
      const answered = xs.filter((a) => a.end < thawedAt);
      const held = xs.filter((a) => a.end >= thawedAt);
      const ms = answered.map((a) => a.end - a.start);
      return {
        attempts: xs.length,
        answers: countByAnswer(xs),
        answeredDuringFreeze: answered.length,
        answerMs: { p50: pct(ms, 0.5), p90: pct(ms, 0.9), max: pct(ms, 1) },
        /** Answered only after SIGCONT: how long after it, at most. */
        heldUntilThaw: held.length,
        heldMsMax: held.length === 0 ? null : Math.round(Math.max(...held.map((a) => a.end - a.start))),
        heldAnsweredAfterThawMsMax: held.length === 0 ? null : Math.round(Math.max(...held.map((a) => a.end - thawedAt))),
        heldAnswers: countByAnswer(held),
      };
    };
    const probesDuring = probes.filter((p) => p.start >= frozenAt && p.start < thawedAt);
    const firstNotReady = probes.find((p) => p.start >= frozenAt && p.status !== 200);
    const firstReadyAfter = probes.find((p) => p.start >= thawedAt && p.status === 200);
    run.figures.freeze = {
      /** Attempts sent before the freeze and still unanswered when it began. */
      inFlightAtFreeze: summary(run.recorder.attempts.filter((a) => a.start < frozenAt && a.end >= frozenAt)),
      /** Attempts sent during the freeze (mostly by the arriving clients). */
      sentDuringFreeze: summary(run.recorder.attempts.filter((a) => a.start >= frozenAt && a.start < thawedAt)),
      readyz: {
        probes: probesDuring.length,
        answers: countStatuses(probesDuring.map((p) => p.status)),
        notReadyAfterMs: firstNotReady ? Math.round(firstNotReady.end - frozenAt) : null,
        answerMsMax: Math.round(Math.max(0, ...probesDuring.map((p) => p.end - p.start))),
        detail: probesDuring.find((p) => p.detail)?.detail ?? null,
        readyAgainAfterThawMs: firstReadyAfter ? Math.round(firstReadyAfter.end - thawedAt) : null,
      },
      acksDuringFreeze: countBetween(run.recorder.acks, frozenAt, thawedAt),
      /** Each arriving client's first attempt: when it came (ms into the freeze), its answer and how long that took. */
      arrivals: arrivals.map((name) => {
        const first = run.recorder.attempts.filter(run.ofLoad(name)).sort((a, b) => a.start - b.start)[0];
        if (!first) return { name, sent: false };
        return {
          atMs: Math.round(first.start - frozenAt),
          answer: first.code ? `${first.status} ${first.code}` : String(first.status),
          answerMs: Math.round(first.end - first.start),
          beforeThaw: first.end < thawedAt,
          /** Sent after /readyz had answered 503: the gateway knew Kafka was unreachable. */
          afterNotReady: firstNotReady !== undefined && first.start >= firstNotReady.end,
        };
      }),
    };
  } finally {
    probing = false;
    await prober;
  }
};

/** txgate_pool_busy from the gateway's /metrics (undefined when it cannot be read). */
async function poolBusy(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
    const m = /^txgate_pool_busy(?:\{[^}]*\})? (\d+)/m.exec(await res.text());
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function countStatuses(statuses: Array<number | string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const st of statuses) out[String(st)] = (out[String(st)] ?? 0) + 1;
  return out;
}

/**
 * Two loads through one gateway: "both" writes one record to a topic that survives and one to a
 * topic deleted mid-load; "kept" writes only to the surviving topic. After the deletion the
 * verifier cannot judge the deleted topic's records (they went with it), so the check reads the
 * surviving topic alone: acknowledged requests have their record there exactly once, failed ones
 * nothing (no phantom). The "kept" load shows whether the gateway keeps serving the other topic.
 */
const topicDelete: Implementation = async (run) => {
  const kept = await run.dataTopic({ name: 'kept' });
  const doomed = await run.dataTopic({ name: 'doomed' });
  const gw = await run.startGateway('gateway', run.instanceId('gw'));
  const both = run.startLoad('both', [gw.url], 'round-robin', { topics: [kept, doomed] });
  run.startLoad('kept', [gw.url], 'round-robin', { topics: [kept], concurrency: Math.max(1, run.params.concurrency / 2) });
  await run.warmUp(run.ofLoad('kept'));
  const deletedAt = run.fault(`delete topic ${doomed}`);
  await run.cluster.deleteTopic(doomed);
  run.mark('TopicCommand --delete returned');
  const is404 = (a: Attempt) => a.start > deletedAt && a.status === 404;
  await run.until(() => run.recorder.attempts.some(is404), run.params.progressTimeoutMs, 'a 404 for the deleted topic');
  const first404 = Math.min(...run.recorder.attempts.filter(is404).map((a) => a.end));
  run.figures.first404AfterMs = Math.round(first404 - deletedAt);
  run.mark('the gateway answers 404 for the deleted topic');
  run.figures.bothLoadAnswersAfterDeletion = countByAnswer(run.recorder.attempts.filter((a) => a.start >= deletedAt && run.ofLoad('both')(a)));
  // From here on every "both" request fails at once with a 404: stop it (without waiting here).
  const stopped = run.stopLoad(both);
  await run.waitRecovered('"kept" load after the deletion', deletedAt, run.ofLoad('kept'));
  run.figures.keptLoadAnswersAfterDeletion = countByAnswer(run.recorder.attempts.filter((a) => a.start >= deletedAt && run.ofLoad('kept')(a)));
  await stopped;
  await run.tail();
  await run.stopLoad(run.loads[1]!);
  // Transactions that took a record for the deleted topic before the gateway knew: how long they hold producers.
  const stoppedAt = performance.now();
  let busy = await poolBusy(gw.url);
  run.mark(`loads stopped; ${busy ?? '?'} producers still busy`);
  const drainWait = run.harness.opts.mode === 'full' ? 330_000 : 30_000;
  while (busy !== 0 && performance.now() - stoppedAt < drainWait) {
    await sleep(1_000);
    busy = await poolBusy(gw.url);
  }
  run.figures.busyProducersAfterLoad = busy === 0 ? { drainedAfterMs: Math.round(performance.now() - stoppedAt) } : { stillBusy: busy, afterMs: Math.round(performance.now() - stoppedAt) };
  run.mark(busy === 0 ? 'every producer idle again' : `${busy} producers still busy after ${Math.round(drainWait / 1000)} s`);
  run.topics.splice(run.topics.indexOf(doomed), 1);
  run.restrictCheckTo = kept;
};

const IMPLEMENTATIONS: Record<ScenarioId, Implementation> = {
  'broker-leader': brokerLeader,
  coordinator,
  'gateway-kill': gatewayKill,
  'rolling-restart': rollingRestart,
  zombie,
  race,
  freeze,
  'topic-delete': topicDelete,
};
