/**
 * txgate against what users would pick instead, in one run on one local broker:
 *
 *   seed (HTTP, library)  a transactional producer with a random UUID transactional.id per request
 *   shared (HTTP)         one transactional producer used by all requests at once
 *   pool (library)        TransactionalProducerPool at several sizes
 *   gateway (HTTP)        `txgate serve`: group commit, with Idempotency-Keys, group commit off
 *   java                  Apache Kafka's Java client: N transactional producers looping begin/send/commit
 *   strimzi bridge (HTTP) only when STRIMZI_BRIDGE_HOME points at a built bridge
 *   HTTP ceiling          Fastify validating the same body and answering 200 without Kafka
 *
 * Every process under test runs on its own, fresh for each point (so its VmHWM is that point's
 * peak RSS), and autocannon runs in another process. Each point first runs the same load for a
 * warm-up on the same connections (or callers), discarded, so servers that build state per
 * connection are measured warm; only answers within the window that follows count, and requests
 * still in flight when it closes are reported as unfinished. Modes alternate within each load
 * point, in a rotating order, so drift of a shared machine hits all of them alike. Results go to
 * bench/results/<profile>.{json,md} and <profile>-*.svg.
 *
 *   npm run bench                  # default profile
 *   npm run bench -- --quick       # 16 and 256 connections, 1 record per request, pool sizes 1 and 8
 *   npm run bench -- --full        # 1..512 connections, 1/10/100 records, pool sizes 1..32
 *   TXGATE_BROKERS=host:9092 npm run bench -- --quick   # use your broker instead of a local one
 *
 * Narrowing a run (smoke tests): --out DIR (instead of bench/results), --modes a,b (modes whose
 * name contains one of these), --connections 16,256, --records 1, --warmup S, --kafka-props LIST
 * (librdkafka properties for the pool and the gateway, key=value separated by commas).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalKafka, ensureTopics, fetchKafkaJars } from '../src/local-kafka/index.js';
import { GatewayProcess, freePort } from '../test/support/gateway-process.js';
import { listTransactionalIds } from '../test/support/kafka.js';
import { CHILD_ENV, ServerProcess, TSX, loadgen, runJson, watchProcess, type Usage } from './lib/harness.js';
import type { LibrarySpec } from './lib/library.js';
import type { LoadgenSpec } from './lib/loadgen.js';
import { compileJava, withTransactionVersion } from './lib/java.js';
import { barSpec, lineSpec, renderSvg, type PlotRow } from './lib/plots.js';
import { bodyVariants, bridgeBody, gatewayBody, VALUE_BYTES, type RunResult } from './lib/work.js';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

interface Profile {
  name: 'quick' | 'default' | 'full';
  seconds: number;
  connections: number[];
  records: number[];
  poolSizes: number[];
  javaProducers: number[];
  /** Seconds of warm-up before each point's window (HTTP and library modes), at least. */
  warmupSeconds: number;
  /** Whole sweeps; each point reports its best sweep (interference on a shared machine only slows a run down). */
  repeats: number;
}
const PROFILES: Record<Profile['name'], Profile> = {
  quick: { name: 'quick', seconds: 5, connections: [16, 256], records: [1], poolSizes: [1, 8], javaProducers: [8], warmupSeconds: 3, repeats: 2 },
  default: { name: 'default', seconds: 10, connections: [1, 16, 256], records: [1, 10], poolSizes: [1, 8, 32], javaProducers: [1, 8], warmupSeconds: 5, repeats: 2 },
  full: {
    name: 'full',
    seconds: 15,
    connections: [1, 16, 64, 256, 512],
    records: [1, 10, 100],
    poolSizes: [1, 2, 4, 8, 16, 32],
    javaProducers: [1, 8, 32],
    warmupSeconds: 5,
    repeats: 3,
  },
};

/** `--name value` from the command line. */
function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const numbers = (v: string | undefined) => v?.split(',').map(Number).filter((n) => Number.isFinite(n) && n > 0);

const base = process.argv.includes('--full') ? PROFILES.full : process.argv.includes('--quick') ? PROFILES.quick : PROFILES.default;
const profile: Profile = {
  ...base,
  connections: numbers(option('connections')) ?? base.connections,
  records: numbers(option('records')) ?? base.records,
  warmupSeconds: Number(option('warmup') ?? process.env.BENCH_WARMUP ?? base.warmupSeconds),
};
const SECONDS = Number(process.env.BENCH_DURATION ?? profile.seconds);
const REPEATS = Number(process.env.BENCH_REPEATS ?? profile.repeats);
const WARMUP = profile.warmupSeconds;
/**
 * The warm-up also lasts until every connection (caller) has had an answer, up to this cap: at 256
 * connections the Strimzi bridge spends its first seconds creating one Kafka producer per connection.
 */
const WARMUP_MAX = Number(process.env.BENCH_WARMUP_MAX ?? 60);
const RESULTS = path.resolve(option('out') ?? path.join(BENCH, 'results'));
const ONLY = option('modes')?.split(',').map((m) => m.trim().toLowerCase()).filter(Boolean);
const NARROWED = ['connections', 'records', 'warmup', 'modes', 'kafka-props', 'batch-bounds'].some((o) => option(o) !== undefined);
/**
 * librdkafka properties for the pool and the gateway (--kafka-props "linger.ms=0,retry.backoff.ms=5"),
 * to try the client's tuning against the defaults; the seed and shared-producer servers keep theirs.
 */
const KAFKA_PROPS = option('kafka-props');
/**
 * --batch-bounds 1,8,64,256,1024: also the gateway at each group-commit bound (--max-batch-requests),
 * without and with Idempotency-Keys, plotted as a curve; narrow with --modes "batch bound".
 */
const BATCH_BOUNDS = numbers(option('batch-bounds')) ?? [];
const GATEWAY_POOL = 8;
/** The benchmark's own broker, whose CPU each point reports; unknown on a user's cluster. */
let BROKER_PID: number | undefined;
const PARTITIONS = 6;

/**
 * One measured point. `connections` is the autocannon connections, library callers, or Java
 * producers; the window's bookkeeping (sent, unfinished, warm-up) is RunResult's.
 */
interface Point extends Pick<RunResult, 'sent' | 'unfinished' | 'unfinishedOldestMs' | 'neverAnswered' | 'silent' | 'warmupSeconds' | 'warmupAnswers' | 'coldAtWindow'> {
  mode: string;
  kind: 'http' | 'library' | 'java';
  /** Transaction protocol the client speaks (KIP-890 v2 or the classic v1); none for the ceiling. */
  protocol: string;
  connections: number;
  records: number;
  seconds: number;
  ok: number;
  requestsPerSec: number;
  recordsPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  errors: Record<string, number>;
  peakRssMiB: number;
  /** Most open file descriptors of the process under test. */
  peakFds: number;
  /** CPU within the window, in cores (1 = one core busy): the process under test, and the broker (own broker only). */
  cpuCores?: number;
  brokerCpuCores?: number;
  /** Prefix of the transactional ids this point used; counted on the coordinator at the end. */
  idPrefix?: string;
  idsLeft?: number;
  /** Which sweep this is (0-based); the report keeps each point's best sweep, the JSON all of them. */
  sweep?: number;
  /** The gateway's --max-batch-requests, for the batch-bound modes. */
  batchBound?: number;
}

// ---------------------------------------------------------------------------------------------
// Modes (child processes: bench/lib/harness.ts)

interface Ctx {
  bootstrap: string;
  topic: string;
  runId: string;
  java?: { classpath: string };
  bridgeHome?: string;
  /** The benchmark started this broker itself, so it may change the broker's features. */
  ownBroker: boolean;
}

interface Mode {
  name: string;
  kind: Point['kind'];
  protocol: string;
  /** Runs one point; undefined when the mode does not apply to this point. */
  run(ctx: Ctx, connections: number, records: number): Promise<Point> | undefined;
}

function point(mode: Mode, connections: number, records: number, r: RunResult, usage: Usage, idPrefix?: string): Point {
  const requestsPerSec = r.ok / r.seconds;
  return {
    mode: mode.name,
    kind: mode.kind,
    protocol: mode.protocol,
    connections,
    records,
    seconds: r.seconds,
    ok: r.ok,
    requestsPerSec,
    recordsPerSec: requestsPerSec * records,
    p50: r.p50,
    p99: r.p99,
    p999: r.p999,
    errors: r.errors,
    ...(r.sent !== undefined ? { sent: r.sent } : {}),
    ...(r.unfinished !== undefined ? { unfinished: r.unfinished, unfinishedOldestMs: r.unfinishedOldestMs ?? 0 } : {}),
    ...(r.neverAnswered !== undefined ? { neverAnswered: r.neverAnswered } : {}),
    ...(r.silent !== undefined ? { silent: r.silent } : {}),
    ...(r.warmupSeconds !== undefined ? { warmupSeconds: r.warmupSeconds, warmupAnswers: r.warmupAnswers ?? 0, coldAtWindow: r.coldAtWindow ?? 0 } : {}),
    peakRssMiB: usage.peakRssMiB,
    peakFds: usage.peakFds,
    ...(usage.cpuCores !== undefined ? { cpuCores: usage.cpuCores } : {}),
    ...(usage.brokerCpuCores !== undefined ? { brokerCpuCores: usage.brokerCpuCores } : {}),
    ...(idPrefix ? { idPrefix } : {}),
  };
}

/** An HTTP point: start the server fresh, drive it from a separate process, stop it. */
async function httpPoint(
  mode: Mode,
  connections: number,
  records: number,
  start: (port: number) => Promise<{ url: string; pid: number | undefined; stop: () => Promise<unknown> }>,
  load: Omit<LoadgenSpec, 'url' | 'connections' | 'seconds'> & { path: string },
  idPrefix?: string,
): Promise<Point> {
  for (let attempt = 1; ; attempt++) {
    const server = await start(await freePort());
    const watch = watchProcess(server.pid, BROKER_PID);
    try {
      const result = await loadgen({
        ...load,
        url: `${server.url}${load.path}`,
        connections,
        seconds: SECONDS,
        timeoutSeconds: 30,
        warmupSeconds: WARMUP,
        warmupMaxSeconds: WARMUP_MAX,
      });
      // A window that lasted far longer than asked means the load generator itself was starved (a
      // shared machine stalling): its figures describe the stall, so measure the point once more.
      if (result.seconds > SECONDS * 2 + 5 && attempt === 1) {
        console.error(`${mode.name} c=${connections}: the load ran ${result.seconds} s instead of ${SECONDS} s; measuring again`);
        continue;
      }
      return point(mode, connections, records, result, watch(result.window), idPrefix);
    } finally {
      watch();
      await server.stop();
    }
  }
}

function nodeServer(kind: 'seed' | 'shared' | 'ceiling', ctx: Ctx, prefix: string) {
  return async (port: number) => {
    const s = await ServerProcess.start(process.execPath, [...TSX, path.join(BENCH, 'lib', 'servers.ts'), kind, String(port), ctx.bootstrap, prefix], port, undefined);
    return { url: s.url, pid: s.child.pid, stop: () => s.stop() };
  };
}

function gatewayServer(ctx: Ctx, prefix: string, extra: string[]) {
  return async (port: number) => {
    const g = new GatewayProcess({
      label: prefix,
      brokers: ctx.bootstrap,
      port,
      instanceId: 'bench',
      args: [
        '--pool-size', String(GATEWAY_POOL), '--transactional-id-prefix', prefix, '--idempotency-topic', `bench-idem-${ctx.runId}`,
        ...(KAFKA_PROPS ? ['--kafka-props', KAFKA_PROPS] : []),
        ...extra,
      ],
    });
    await g.ready();
    return { url: g.url, pid: g.pid, stop: () => g.kill('SIGTERM') };
  };
}

const json = (ctx: Ctx, records: number) => ({ path: '/v1/transactions', body: bodyVariants((v) => gatewayBody(ctx.topic, records, v)), contentType: 'application/json' });
const tag = (name: string, c: number, r: number, ctx: Ctx) => `bench-${ctx.runId}-${name}-c${c}-r${r}`;

function modes(): Mode[] {
  const list: Mode[] = [];
  const seedHttp: Mode = {
    name: 'seed: producer per request (HTTP)',
    kind: 'http',
    protocol: 'v1 (librdkafka)',
    run: (ctx, c, r) => httpPoint(seedHttp, c, r, nodeServer('seed', ctx, tag('seedhttp', c, r, ctx)), json(ctx, r), tag('seedhttp', c, r, ctx)),
  };
  const seedLib: Mode = {
    name: 'seed: producer per request (library)',
    kind: 'library',
    protocol: 'v1 (librdkafka)',
    run: (ctx, c, r) => libraryPoint(seedLib, ctx, { mode: 'seed', concurrency: c, records: r, prefix: tag('seedlib', c, r, ctx) }),
  };
  const shared: Mode = {
    name: 'one shared producer (HTTP)',
    kind: 'http',
    protocol: 'v1 (librdkafka)',
    run: (ctx, c, r) => httpPoint(shared, c, r, nodeServer('shared', ctx, tag('shared', c, r, ctx)), json(ctx, r)),
  };
  list.push(seedHttp, seedLib, shared);
  for (const size of profile.poolSizes) {
    const pool: Mode = {
      name: `pool of ${size} (library)`,
      kind: 'library',
      protocol: 'v1 (librdkafka)',
      run: (ctx, c, r) => libraryPoint(pool, ctx, { mode: 'pool', poolSize: size, concurrency: c, records: r, prefix: tag(`pool${size}`, c, r, ctx) }),
    };
    list.push(pool);
  }
  const gateways: Array<[string, string, string[], boolean]> = [
    ['gateway, group commit', 'gw', [], false],
    ['gateway, group commit + Idempotency-Key', 'gwkey', [], true],
    ['gateway, group commit off', 'gwone', ['--max-batch-requests', '1'], false],
  ];
  for (const [name, short, extra, keys] of gateways) {
    const gw: Mode = {
      name,
      kind: 'http',
      protocol: 'v1 (librdkafka)',
      run: (ctx, c, r) => httpPoint(gw, c, r, gatewayServer(ctx, tag(short, c, r, ctx), extra), { ...json(ctx, r), idempotencyKeys: keys }, tag(short, c, r, ctx)),
    };
    list.push(gw);
  }
  for (const bound of BATCH_BOUNDS) {
    for (const keys of [false, true]) {
      const short = `gwb${bound}${keys ? 'k' : ''}`;
      const gw: Mode = {
        name: `gateway${keys ? ' + Idempotency-Key' : ''}, batch bound ${bound}`,
        kind: 'http',
        protocol: 'v1 (librdkafka)',
        run: async (ctx, c, r) => ({
          ...(await httpPoint(gw, c, r, gatewayServer(ctx, tag(short, c, r, ctx), ['--max-batch-requests', String(bound)]), { ...json(ctx, r), idempotencyKeys: keys }, tag(short, c, r, ctx))),
          batchBound: bound,
        }),
      };
      list.push(gw);
    }
  }
  for (const n of profile.javaProducers) {
    const java: Mode = {
      name: `java: ${n} producers (kafka-clients)`,
      kind: 'java',
      protocol: 'v2 (KIP-890, kafka-clients 4.x)',
      // Closed loop with its own concurrency: measured once per records-per-request value.
      run: (ctx, c, r) => (c === profile.connections[0] && ctx.java ? javaPoint(java, ctx, n, r) : undefined),
    };
    // The same client made to speak the classic protocol librdkafka speaks, by finalizing
    // transaction.version 0 on the broker for this point only: the like-for-like comparison.
    // Only on the benchmark's own broker, never on a user's cluster.
    const classic: Mode = {
      name: `java: ${n} producers, classic protocol (kafka-clients)`,
      kind: 'java',
      protocol: 'v1 (kafka-clients 4.x, broker at transaction.version 0)',
      run: (ctx, c, r) =>
        c === profile.connections[0] && ctx.java && ctx.ownBroker ? withTransactionVersion(ctx.java.classpath, ctx.bootstrap, 0, () => javaPoint(classic, ctx, n, r)) : undefined,
    };
    list.push(java, classic);
  }
  const bridge: Mode = {
    name: 'strimzi bridge (HTTP)',
    kind: 'http',
    protocol: 'none (no transactions)',
    run: (ctx, c, r) => {
      const home = ctx.bridgeHome;
      if (!home) return undefined;
      return httpPoint(
        bridge,
        c,
        r,
        async (port) => {
          const dir = mkdtempSync(path.join(os.tmpdir(), 'txgate-bench-bridge-'));
          const config = path.join(dir, 'application.properties');
          // /ready is served on the management port only; it is fixed (8081) unless moved.
          const management = await freePort();
          writeFileSync(config, `bridge.id=bench\nkafka.bootstrap.servers=${ctx.bootstrap}\nhttp.host=127.0.0.1\nhttp.port=${port}\nhttp.management.port=${management}\nkafka.producer.acks=all\n`);
          // Warnings only, as the gateway runs (--log-level warn): at INFO the bridge prints each new
          // producer's whole configuration, about 120 lines per connection.
          const log4j = path.join(dir, 'log4j2.properties');
          writeFileSync(
            log4j,
            'appender.console.type = Console\nappender.console.name = STDOUT\nappender.console.layout.type = PatternLayout\nappender.console.layout.pattern = %d %-5p [%t] %c{1} - %m%n\n' +
              'rootLogger.level = WARN\nrootLogger.appenderRef.console.ref = STDOUT\n',
          );
          // kafka_bridge_run.sh runs the first `java` on PATH, and the bridge needs Java 21+.
          const javaHome = process.env.STRIMZI_BRIDGE_JAVA_HOME ?? process.env.JAVA_HOME;
          const env = {
            ...CHILD_ENV,
            KAFKA_BRIDGE_LOG4J_OPTS: `-Dlog4j2.configurationFile=file:${log4j}`,
            ...(javaHome ? { PATH: `${path.join(javaHome, 'bin')}${path.delimiter}${process.env.PATH ?? ''}` } : {}),
          };
          let s: ServerProcess;
          try {
            // GET / answers 200 on the API port once it listens.
            s = await ServerProcess.start('bash', [path.join(home, 'bin', 'kafka_bridge_run.sh'), `--config-file=${config}`], port, '/', env);
          } catch (error) {
            rmSync(dir, { recursive: true, force: true });
            throw error;
          }
          return { url: s.url, pid: s.child.pid, stop: async () => (await s.stop(), rmSync(dir, { recursive: true, force: true })) };
        },
        { path: `/topics/${ctx.topic}`, body: bodyVariants((v) => bridgeBody(r, v)), contentType: 'application/vnd.kafka.binary.v2+json' },
      );
    },
  };
  const ceiling: Mode = {
    name: 'HTTP ceiling (Fastify, no Kafka)',
    kind: 'http',
    protocol: 'none',
    run: (ctx, c, r) => httpPoint(ceiling, c, r, nodeServer('ceiling', ctx, 'none'), json(ctx, r)),
  };
  list.push(bridge, ceiling);
  return ONLY ? list.filter((m) => ONLY.some((o) => m.name.toLowerCase().includes(o))) : list;
}

async function libraryPoint(mode: Mode, ctx: Ctx, spec: Pick<LibrarySpec, 'mode' | 'concurrency' | 'records' | 'prefix' | 'poolSize'>): Promise<Point> {
  const full: LibrarySpec = {
    ...spec,
    bootstrap: ctx.bootstrap,
    topic: ctx.topic,
    seconds: SECONDS,
    warmupSeconds: WARMUP,
    warmupMaxSeconds: WARMUP_MAX,
    ...(KAFKA_PROPS && spec.mode === 'pool' ? { kafkaProps: KAFKA_PROPS } : {}),
  };
  let watch: ReturnType<typeof watchProcess> = () => ({ peakRssMiB: NaN, peakFds: NaN });
  const result = await runJson<RunResult>(process.execPath, [...TSX, path.join(BENCH, 'lib', 'library.ts'), JSON.stringify(full)], CHILD_ENV, (child) => {
    watch = watchProcess(child.pid, BROKER_PID);
  });
  return point(mode, spec.concurrency, spec.records, result, watch(result.window), spec.prefix);
}

async function javaPoint(mode: Mode, ctx: Ctx, producers: number, records: number): Promise<Point> {
  const prefix = `bench-${ctx.runId}-java${producers}${mode.protocol.startsWith('v1') ? 'v1' : ''}-r${records}`;
  let watch: ReturnType<typeof watchProcess> = () => ({ peakRssMiB: NaN, peakFds: NaN });
  const r = await runJson<{ committed: number; seconds: number; p50: number; p99: number; p999: number; errors: Record<string, number>; window: RunResult['window'] }>(
    'java',
    ['-Xmx512m', '-cp', ctx.java!.classpath, 'TxProducers', ctx.bootstrap, ctx.topic, String(producers), String(records), String(SECONDS), prefix],
    process.env,
    (child) => {
      watch = watchProcess(child.pid, BROKER_PID);
    },
  );
  return point(mode, producers, records, { seconds: r.seconds, ok: r.committed, errors: r.errors, p50: r.p50, p99: r.p99, p999: r.p999 }, watch(r.window), prefix);
}

// ---------------------------------------------------------------------------------------------
// Machine, report

function firstLine(command: string, args: string[]): string {
  // `java -version` writes to stderr: take whichever stream has the text.
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || 'unknown';
}

function versionOf(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function machine(libDir: string | undefined) {
  const jar = libDir ? readdirSync(libDir).find((f) => /^kafka-clients-.*\.jar$/.test(f)) : undefined;
  const confluent = JSON.parse(readFileSync(require.resolve('@confluentinc/kafka-javascript/package.json'), 'utf8')) as { version: string; librdkafka: string };
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    java: firstLine('java', ['-version']),
    kafka: jar ? jar.replace(/^kafka-clients-|\.jar$/g, '') : 'unknown',
    clients: {
      '@confluentinc/kafka-javascript': confluent.version,
      librdkafka: confluent.librdkafka,
      'kafka-clients': jar ? jar.replace(/^kafka-clients-|\.jar$/g, '') : 'unknown',
      autocannon: versionOf('autocannon'),
      fastify: versionOf('fastify'),
    },
    loadAverageBefore: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const errorsText = (e: Record<string, number>) => Object.entries(e).map(([k, v]) => `${k}: ${v}`).join(', ') || '0';
/** Errors, and a plain statement when the window completed nothing (no errors then means nothing answered, not success). */
const outcomeText = (p: Point) =>
  (p.ok === 0 && (p.sent ?? 1) > 0 ? `**nothing completed**${Object.keys(p.errors).length ? `; ${errorsText(p.errors)}` : ''}` : errorsText(p.errors)) +
  (p.silent ? `; ${p.silent} of ${p.connections} connections got no answer` : '');
const unfinishedText = (p: Point) => (p.unfinished === undefined ? '-' : `${p.unfinished} (oldest ${fmt(p.unfinishedOldestMs ?? 0)} ms)`);

/** By records per request, then connections, then the order modes() lists the modes in. */
function sorted(points: Point[]): Point[] {
  const order = modes().map((m) => m.name);
  return [...points].sort((a, b) => a.records - b.records || a.connections - b.connections || order.indexOf(a.mode) - order.indexOf(b.mode));
}

/** How a run was measured, from the run itself or (for --render) from its JSON; no warm-up in runs made before there was one. */
interface RunMeta {
  seconds: number;
  repeats: number;
  warmup?: { minSeconds: number; maxSeconds: number };
}

function markdown(points: Point[], info: ReturnType<typeof machine>, ratios: Ratio[], meta: RunMeta): string {
  const lines = [
    `# txgate benchmark (${profile.name} profile)`,
    '',
    `Command: \`npm run bench${profile.name === 'default' ? '' : ` -- --${profile.name}`}\`${NARROWED ? ' (narrowed: see the JSON\'s profile)' : ''}. ${meta.seconds} s per point, best of ${meta.repeats} sweeps by req/s (every sweep is in the JSON); ${VALUE_BYTES} B records to one topic of ${PARTITIONS} partitions on one local broker; ` +
      `the gateway runs ${GATEWAY_POOL} producers. Each process under test ran on its own, fresh per point; autocannon ran in a separate process.`,
    '',
    (meta.warmup
      ? `Warm-up: before each point's window, every HTTP and library mode ran the same load on the same connections (callers) for at least ${meta.warmup.minSeconds} s, ` +
        `and until every connection had had an answer (at most ${meta.warmup.maxSeconds} s), discarded: servers that build state per connection (the Strimzi bridge opens a Kafka producer per HTTP connection) are measured warm. ` +
        'The Java producers run their own closed loop with no warm-up (their producers are created and initialised before their timer starts). ' +
        'Only answers received within the window count. "unfinished" are requests in flight when the window closed (in neither ok nor errors; a closed loop has about one per connection, so the age of the oldest is what tells a stuck point); ' +
        '"never answered" are requests of the whole run that got no answer at all (timeouts, dropped connections, or none within 10 s after the window).'
      : 'No warm-up: this run was made before the benchmark had one, so its first seconds (a cold server, per-connection state being built) count, ' +
        'and requests left unfinished or never answered were not recorded (a point that completed nothing shows as "nothing completed").'),
    '',
    `Machine: ${info.cpus} × ${info.cpuModel}, ${info.memoryGiB} GiB, ${info.os}; Node ${info.node}; ${info.java}; Kafka ${info.kafka}; ` +
      `clients: ${Object.entries(info.clients).map(([k, v]) => `${k} ${v}`).join(', ')}. Load average before the run: ${info.loadAverageBefore.join(' ')}.`,
    '',
    'Transaction protocol: librdkafka 2.15 (the seed, the shared producer, the pool and the gateway) speaks the classic v1 flow; ' +
      'kafka-clients 4.x speaks KIP-890 v2 (one fewer round trip per transaction), and is also measured on the classic protocol (the broker\'s transaction.version set to 0 for that point only), which is the like-for-like comparison. ' +
      '"ids left" are transactional ids the coordinator still holds after the run.',
    '',
    '## Targets',
    '',
    '| ratio | target | measured | met |',
    '|---|---|---|---|',
    ...ratios.map((r) => `| ${r.name} | ≥ ${r.target} | ${r.value === undefined ? 'not measured' : `× ${fmt(r.value, 2)}`} | ${r.value === undefined ? '-' : r.value >= r.target ? 'yes' : 'no'} |`),
    '',
    '## All points',
    '',
    '| mode | protocol | conns | records/req | req/s | records/s | p50 ms | p99 ms | p99.9 ms | ok | errors | unfinished at close | never answered | warm-up s | peak RSS MiB | peak fds | CPU cores | CPU µs/req | broker CPU cores | ids left |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...sorted(points).map(
      (p) =>
        `| ${p.mode} | ${p.protocol} | ${p.connections} | ${p.records} | ${fmt(p.requestsPerSec, 1)} | ${fmt(p.recordsPerSec, 1)} | ${fmt(p.p50, 1)} | ${fmt(p.p99, 1)} | ${fmt(p.p999, 1)} | ${p.ok} | ${outcomeText(p)} | ` +
        `${unfinishedText(p)} | ${p.neverAnswered ?? '-'} | ${p.warmupSeconds === undefined ? '-' : `${fmt(p.warmupSeconds, 1)}${p.coldAtWindow ? ` (${p.coldAtWindow} cold)` : ''}`} | ${fmt(p.peakRssMiB)} | ` +
        `${p.peakFds === undefined ? '-' : fmt(p.peakFds)} | ${p.cpuCores === undefined ? '-' : fmt(p.cpuCores, 2)} | ${p.cpuCores === undefined ? '-' : fmt((p.cpuCores * 1e6) / p.requestsPerSec)} | ${p.brokerCpuCores === undefined ? '-' : fmt(p.brokerCpuCores, 2)} | ${p.idsLeft ?? ''} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

interface Ratio {
  name: string;
  target: number;
  value?: number;
}

function ratios(points: Point[]): Ratio[] {
  const top = Math.max(...profile.connections.filter((c) => c <= 256));
  const r1 = profile.records[0]!;
  const rate = (mode: string, c?: number) => points.find((p) => p.mode === mode && p.records === r1 && (c === undefined || p.connections === c))?.requestsPerSec;
  const div = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : a !== undefined && b === 0 ? Infinity : undefined);
  const gw = rate('gateway, group commit', top);
  return [
    { name: `gateway ÷ strimzi bridge, req/s at ${top} conns`, target: 5, value: div(gw, rate('strimzi bridge (HTTP)', top)) },
    // The pool can run only 8 transactions at once whatever the callers: show it at each caller count.
    ...profile.connections.map((c) => ({
      name: `pool of 8 (${c} callers) ÷ 8 Java producers, tx/s`,
      target: 1,
      value: div(rate('pool of 8 (library)', c), rate('java: 8 producers (kafka-clients)')),
    })),
    // Like for like: the Java client on the classic protocol librdkafka speaks.
    ...profile.connections.map((c) => ({
      name: `pool of 8 (${c} callers) ÷ 8 Java producers on the classic protocol, tx/s`,
      target: 1,
      value: div(rate('pool of 8 (library)', c), rate('java: 8 producers, classic protocol (kafka-clients)')),
    })),
    { name: `gateway ÷ seed (HTTP), req/s at ${top} conns`, target: 50, value: div(gw, rate('seed: producer per request (HTTP)', top)) },
    { name: `gateway ÷ HTTP ceiling, req/s at ${top} conns`, target: 0.6, value: div(gw, rate('HTTP ceiling (Fastify, no Kafka)', top)) },
  ];
}

async function plots(points: Point[]): Promise<string[]> {
  const r1 = profile.records[0]!;
  const sweep = points.filter((p) => p.records === r1 && p.kind !== 'java');
  const rows = (value: (p: Point) => number): PlotRow[] => sweep.map((p) => ({ mode: p.mode, connections: p.connections, value: value(p) }));
  const top = Math.max(...sweep.map((p) => p.connections));
  const files: Array<[string, Parameters<typeof renderSvg>[0]]> = [
    [`${profile.name}-throughput.svg`, lineSpec(`Committed requests per second, ${r1} × ${VALUE_BYTES} B records per request (${profile.name} run)`, 'requests/s (log)', rows((p) => p.requestsPerSec), true)],
    [`${profile.name}-latency-p99.svg`, lineSpec(`p99 latency, ${r1} record(s) per request (${profile.name} run)`, 'p99 ms (log)', rows((p) => p.p99), true)],
    [
      `${profile.name}-peak-rss.svg`,
      barSpec(
        `Peak RSS of the process under test at ${top} connections (${profile.name} run)`,
        'VmHWM MiB',
        points.filter((p) => p.records === r1 && (p.connections === top || p.kind === 'java')).map((p) => ({ mode: p.mode, value: p.peakRssMiB })),
      ),
    ],
  ];
  const curve = points.filter((p) => p.batchBound !== undefined && p.records === r1);
  if (curve.length > 0) {
    const at = Math.max(...curve.map((p) => p.connections));
    const rows = (value: (p: Point) => number): PlotRow[] =>
      curve.filter((p) => p.connections === at).map((p) => ({ mode: p.mode.includes('Idempotency-Key') ? 'with Idempotency-Key' : 'no key', connections: p.batchBound!, value: value(p) }));
    const x = 'most requests per transaction (--max-batch-requests), log';
    files.push(
      [`${profile.name}-batch-curve.svg`, lineSpec(`Group commit: committed requests per second against the batch bound, ${at} connections`, 'requests/s', rows((p) => p.requestsPerSec), false, x)],
      [`${profile.name}-batch-curve-p99.svg`, lineSpec(`Group commit: p99 latency against the batch bound, ${at} connections`, 'p99 ms (log)', rows((p) => p.p99), true, x)],
    );
  }
  for (const [name, spec] of files) writeFileSync(path.join(RESULTS, name), await renderSvg(spec));
  return files.map(([name]) => name);
}

// ---------------------------------------------------------------------------------------------

/** Rewrites the Markdown and plots from a run's JSON (`--render`), e.g. after changing how they look. */
async function render(): Promise<void> {
  const saved = JSON.parse(readFileSync(path.join(RESULTS, `${profile.name}.json`), 'utf8')) as {
    machine: ReturnType<typeof machine> & { loadAverageAfter: number[] };
    points: Point[];
    secondsPerPoint?: number;
    repeats?: number;
    profile?: { repeats?: number };
    warmup?: RunMeta['warmup'];
  };
  const meta: RunMeta = { seconds: saved.secondsPerPoint ?? SECONDS, repeats: saved.repeats ?? saved.profile?.repeats ?? REPEATS, ...(saved.warmup ? { warmup: saved.warmup } : {}) };
  const svgs = await plots(saved.points);
  writeFileSync(
    path.join(RESULTS, `${profile.name}.md`),
    `${markdown(saved.points, saved.machine, ratios(saved.points), meta)}\nLoad average after the run: ${saved.machine.loadAverageAfter.join(' ')}. Plots: ${svgs.map((s) => `[${s}](${s})`).join(', ')}.\n`,
  );
}

async function main(): Promise<void> {
  if (process.argv.includes('--render')) return render();
  let local: LocalKafka | undefined;
  let stateDir: string | undefined;
  let bootstrap = process.env.TXGATE_BROKERS;
  const started = new Date();
  try {
    const libDir = await fetchKafkaJars().then(
      (dir) => dir.trim().split('\n').pop()!,
      (error: unknown) => (console.error(`no Kafka jars, Java mode skipped: ${String(error)}`), undefined),
    );
    if (!bootstrap) {
      stateDir = mkdtempSync(path.join(os.tmpdir(), 'txgate-bench-compare-'));
      local = new LocalKafka({ port: Number(process.env.BENCH_KAFKA_PORT ?? 19592), stateDir });
      bootstrap = await local.start();
      BROKER_PID = (await local.status()).pid;
    }
    const runId = `${Date.now()}`;
    const ctx: Ctx = { bootstrap, topic: `bench-compare-${runId}`, runId, ownBroker: local !== undefined };
    await ensureTopics(bootstrap, [{ topic: ctx.topic, partitions: PARTITIONS }]);
    if (libDir && modes().some((m) => m.kind === 'java')) ctx.java = { classpath: compileJava(libDir) };
    const bridgeHome = process.env.STRIMZI_BRIDGE_HOME;
    if (bridgeHome && existsSync(path.join(bridgeHome, 'bin', 'kafka_bridge_run.sh'))) ctx.bridgeHome = bridgeHome;
    else
      console.log(
        '# strimzi bridge skipped: set STRIMZI_BRIDGE_HOME to a built bridge distribution (the directory with bin/kafka_bridge_run.sh). ' +
          'Build it from github.com/strimzi/strimzi-kafka-bridge with Java 21+: mvn -B package -Dmaven.test.skip=true -Dspotbugs.skip -Dcheckstyle.skip ' +
          '-Dmaven.javadoc.skip=true (pin -Dstrimzi-oauth.version etc. if a version its main asks for is not served); the distribution is target/kafka-bridge-*/kafka-bridge-*/. ' +
          'It runs on Java 21+: set STRIMZI_BRIDGE_JAVA_HOME (or JAVA_HOME) to such a JDK.',
      );
    const info = machine(libDir);
    console.log(`# txgate comparison, ${profile.name} profile: ${SECONDS} s per point after a warm-up of ${WARMUP} s or more, connections ${profile.connections.join(', ')}, records ${profile.records.join(', ')}, broker ${bootstrap}`);
    console.log(`# ${info.cpus} CPUs, ${info.memoryGiB} GiB, Node ${info.node}, ${info.java}, Kafka ${info.kafka}, load average ${info.loadAverageBefore.join(' ')}`);

    const all = modes();
    const samples: Point[] = [];
    let round = 0;
    for (let sweep = 0; sweep < REPEATS; sweep++) {
      // Own transactional ids per sweep, so each sweep's ids left are counted apart.
      const sweepCtx: Ctx = { ...ctx, runId: `${runId}-${sweep}` };
      for (const records of profile.records) {
        for (const connections of profile.connections) {
          // Rotate the order each round so no mode always runs first (cold) or last (after the heaviest).
          const order = all.map((_, i) => all[(i + round) % all.length]!);
          round++;
          for (const mode of order) {
            const running = mode.run(sweepCtx, connections, records);
            if (!running) continue;
            try {
              const p = { ...(await running), sweep };
              samples.push(p);
              console.log(
                `${p.mode.padEnd(42)} c=${String(p.connections).padStart(3)} r=${p.records}  ${fmt(p.requestsPerSec, 1).padStart(8)} req/s  ` +
                  `p50 ${fmt(p.p50, 1)} p99 ${fmt(p.p99, 1)} p99.9 ${fmt(p.p999, 1)} ms  errors ${outcomeText(p)}  unfinished ${unfinishedText(p)}  ` +
                  `never answered ${p.neverAnswered ?? '-'}  warm-up ${fmt(p.warmupSeconds ?? NaN, 1)} s  peak RSS ${fmt(p.peakRssMiB)} MiB  fds ${fmt(p.peakFds)}  ` +
                  `CPU ${fmt(p.cpuCores ?? NaN, 2)} broker ${fmt(p.brokerCpuCores ?? NaN, 2)} cores`,
              );
            } catch (error) {
              console.error(`${mode.name} c=${connections} r=${records} FAILED: ${(error as Error).message}`);
            }
          }
        }
      }
    }

    // One TransactionsCommand call (a JVM start) for all points: ids by the prefix each used.
    const ids = await listTransactionalIds(bootstrap).catch((error: unknown) => (console.error(`transactions list failed: ${String(error)}`), undefined));
    if (ids) for (const p of samples) if (p.idPrefix) p.idsLeft = ids.filter((id) => id.startsWith(`${p.idPrefix}-`)).length;
    const best = new Map<string, Point>();
    for (const p of samples) {
      const key = `${p.mode}|${p.connections}|${p.records}`;
      const seen = best.get(key);
      if (!seen || p.requestsPerSec > seen.requestsPerSec) best.set(key, p);
    }
    const points = samples.filter((p) => best.get(`${p.mode}|${p.connections}|${p.records}`) === p);

    mkdirSync(RESULTS, { recursive: true });
    const rs = ratios(points);
    const finished = new Date();
    const loadAfter = os.loadavg().map((l) => Math.round(l * 100) / 100);
    writeFileSync(
      path.join(RESULTS, `${profile.name}.json`),
      `${JSON.stringify({ profile, secondsPerPoint: SECONDS, repeats: REPEATS, warmup: { minSeconds: WARMUP, maxSeconds: WARMUP_MAX }, startedAt: started.toISOString(), finishedAt: finished.toISOString(), machine: { ...info, loadAverageAfter: loadAfter }, ratios: rs, points, samples }, null, 2)}\n`,
    );
    const svgs = await plots(points);
    writeFileSync(
      path.join(RESULTS, `${profile.name}.md`),
      `${markdown(points, info, rs, { seconds: SECONDS, repeats: REPEATS, warmup: { minSeconds: WARMUP, maxSeconds: WARMUP_MAX } })}\nLoad average after the run: ${loadAfter.join(' ')}. Plots: ${svgs.map((s) => `[${s}](${s})`).join(', ')}.\n`,
    );
    console.log('');
    for (const r of rs) console.log(`${r.name}: ${r.value === undefined ? 'not measured' : `x${fmt(r.value, 2)}`} (target >= ${r.target})`);
    console.log(`results: ${path.relative(process.cwd(), RESULTS) || '.'}/${profile.name}.{json,md}, ${svgs.join(', ')}`);
  } finally {
    if (local) await local.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
