/**
 * `txgate verify`: drives running gateways with many retrying clients sending checkable records,
 * then reads the topics back (read_committed) and reports lost, duplicated, partial, phantom and
 * misplaced records, and the broker's view of transactions. Exit 0: OK, 1: an anomaly,
 * 2: nothing could be shown (bad flags, unreachable topics, nothing acknowledged).
 */
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { exitCode, verdictLine, type VerifyReport } from '../../verify/report.js';
import { CHECK_DEFAULTS, checkLoad, prepareTopics } from '../../verify/run.js';
import { LOAD_DEFAULTS, runLoad, type GatewayMode } from '../../verify/load.js';
import { DEFAULT_RETRY_POLICY } from '../../verify/http-client.js';

interface VerifyFlags {
  gateway: string[];
  spray?: boolean;
  race?: boolean;
  brokers?: string;
  topic: string[];
  createTopic?: boolean;
  partitions: number;
  requests?: number;
  duration?: number;
  concurrency: number;
  recordsPerRequest: number;
  valueBytes: number;
  apiKey?: string;
  attemptTimeoutMs: number;
  giveUpMs: number;
  retryAfterCapMs: number;
  keyPrefix: string;
  runId?: string;
  readTimeoutMs: number;
  checkTransactions?: boolean;
  transactionalIdPrefix: string;
  maxTransactionalIds?: number;
  json?: boolean;
  report?: string;
  quiet?: boolean;
}

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

const collect = (value: string, prev: string[] = []): string[] => [...prev, value];

function gatewayUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('expected an http:// or https:// URL');
  return value.replace(/\/+$/, '');
}

export function register(program: Command): void {
  const cmd = program
    .command('verify')
    .description('drive gateways with retried, checkable requests, read the topics back and report lost, duplicated, partial, phantom and misplaced records')
    .addOption(new Option('--gateway <url>', 'gateway base URL (repeatable; default http://127.0.0.1:8080)').argParser((v: string, prev: string[] | undefined) => collect(gatewayUrl(v), prev)))
    .addOption(new Option('--spray', 'send each attempt to the next gateway (a client behind a load balancer)').conflicts('race'))
    .addOption(new Option('--race', 'send each request to every gateway at the same moment, each side retrying on its own'))
    .addOption(new Option('--brokers <host:port,...>', 'Kafka bootstrap servers, to read the topics back (required)').env('TXGATE_BROKERS'))
    .addOption(new Option('--topic <name>', 'topic to write (repeatable; records are spread over them)').argParser(collect))
    .addOption(new Option('--create-topic', 'create the topics if missing (default: they must exist)'))
    .addOption(new Option('--partitions <n>', 'partitions of a topic --create-topic creates').argParser(integer(1)).default(3))
    .addOption(new Option('--requests <n>', `requests to send (default ${LOAD_DEFAULTS.requests} without --duration)`).argParser(integer(1)))
    .addOption(new Option('--duration <s>', 'keep starting requests this long (with --requests too: whichever ends first)').argParser(seconds))
    .addOption(new Option('--concurrency <c>', 'clients sending at once').argParser(integer(1)).default(LOAD_DEFAULTS.concurrency))
    .addOption(new Option('--records-per-request <r>', 'records in each request (one transaction)').argParser(integer(1)).default(LOAD_DEFAULTS.recordsPerRequest))
    .addOption(new Option('--value-bytes <b>', 'approximate size of each record value').argParser(integer(0)).default(LOAD_DEFAULTS.valueBytes))
    .addOption(new Option('--api-key <token>', 'sent as Authorization: Bearer <token> (prefer the env var: arguments show in ps)').env('TXGATE_VERIFY_API_KEY'))
    .addOption(new Option('--attempt-timeout-ms <ms>', 'one HTTP attempt; then it is retried').argParser(integer(1)).default(LOAD_DEFAULTS.attemptTimeoutMs))
    .addOption(new Option('--give-up-ms <ms>', 'a request without a definitive answer this long after its first attempt is undecided').argParser(integer(1)).default(LOAD_DEFAULTS.giveUpMs))
    .addOption(new Option('--retry-after-cap-ms <ms>', 'Retry-After is honoured up to this').argParser(integer(0)).default(DEFAULT_RETRY_POLICY.retryAfterCapMs))
    .addOption(new Option('--key-prefix <prefix>', 'starts every Idempotency-Key and record key (then the run id)').default(LOAD_DEFAULTS.keyPrefix))
    .addOption(new Option('--run-id <id>', 'the run id in keys and values (default: a new unique one)'))
    .addOption(new Option('--read-timeout-ms <ms>', 'how long reading the topics back may take').argParser(integer(1)).default(CHECK_DEFAULTS.readTimeoutMs))
    .addOption(new Option('--check-transactions', "ask Kafka's TransactionsCommand (scripts/kafka-local.sh, needs Java) for ongoing and hanging transactions; default: when Java is found"))
    .addOption(new Option('--no-check-transactions', 'skip the transactions check'))
    .addOption(new Option('--transactional-id-prefix <prefix>', 'transactional ids that are the gateways\' start with this').default(CHECK_DEFAULTS.transactionalIdPrefix))
    .addOption(new Option('--max-transactional-ids <n>', 'more transactional ids with the prefix than this is an anomaly (ids leaking)').argParser(integer(0)))
    .addOption(new Option('--json', 'print the JSON report on stdout (the verdict line goes to stderr)'))
    .addOption(new Option('--report <path>', 'write the JSON report to this file'))
    .addOption(new Option('--quiet', 'no progress lines on stderr'))
    .addHelpText(
      'after',
      `
Every request carries records that name themselves (key <key prefix><run id>-<request>-<index>,
value JSON with the run id, request number and record index) and an Idempotency-Key, and is
retried with the same key and body until a definitive answer: 200, or a 4xx other than
408/409/429. 409, 429, 5xx, connection errors and timeouts are retried (Retry-After honoured up to
--retry-after-cap-ms) until --give-up-ms; then the request is undecided.

Examples:
  txgate verify --brokers 127.0.0.1:19092 --topic demo --requests 5000 --concurrency 64
  txgate verify --brokers 127.0.0.1:19092 --topic orders --gateway http://10.0.0.1:8080 \\
                --gateway http://10.0.0.2:8080 --race --duration 60 --json`,
    );
  // Exit 1 means an anomaly: a usage error must not look like one.
  cmd.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  cmd.action(async (flags: VerifyFlags) => {
    const code = await runVerifyCommand(flags);
    // Everything is closed; exit even if an idle keep-alive socket or a native handle lingers.
    process.exit(code);
  });
}

async function runVerifyCommand(flags: VerifyFlags): Promise<number> {
  const fail = (message: string): number => {
    console.error(`txgate verify: ${message}`);
    return 2;
  };
  if (!flags.brokers) return fail('--brokers is required (to read the topics back)');
  if (!flags.topic || flags.topic.length === 0) return fail('--topic is required');
  const gateways = flags.gateway && flags.gateway.length > 0 ? flags.gateway : ['http://127.0.0.1:8080'];
  const mode: GatewayMode = flags.race ? 'race' : flags.spray ? 'spray' : 'round-robin';
  const brokers = flags.brokers;

  try {
    await prepareTopics(brokers, flags.topic, flags.createTopic ? flags.partitions : undefined);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }

  // Ctrl-C ends the load (unfinished requests become undecided) and still checks what was sent;
  // a second Ctrl-C exits at once.
  const interrupt = new AbortController();
  const onSignal = (): void => {
    if (interrupt.signal.aborted) process.exit(130);
    console.error('txgate verify: interrupted: stopping the load, then checking what was sent (Ctrl-C again to quit)');
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  let report: VerifyReport;
  try {
    const load = await runLoad({
      gateways,
      mode,
      topics: flags.topic,
      requests: flags.requests,
      durationMs: flags.duration === undefined ? undefined : flags.duration * 1000,
      concurrency: flags.concurrency,
      recordsPerRequest: flags.recordsPerRequest,
      valueBytes: flags.valueBytes,
      apiKey: flags.apiKey,
      attemptTimeoutMs: flags.attemptTimeoutMs,
      giveUpMs: flags.giveUpMs,
      retryPolicy: { retryAfterCapMs: flags.retryAfterCapMs },
      keyPrefix: flags.keyPrefix,
      runId: flags.runId,
      signal: interrupt.signal,
      onProgress: flags.quiet
        ? undefined
        : (p) => console.error(`txgate verify: ${(p.elapsedMs / 1000).toFixed(0)} s: ${p.finished} requests done (${p.acknowledged} acknowledged), ${p.inFlight} in flight`),
    });
    if (!flags.quiet) console.error(`txgate verify: ${load.requests.length} requests sent in ${(load.stats.durationMs / 1000).toFixed(1)} s; reading ${flags.topic.join(', ')} back`);
    report = await checkLoad(load, {
      brokers,
      readTimeoutMs: flags.readTimeoutMs,
      checkTransactions: flags.checkTransactions ?? 'auto',
      transactionalIdPrefix: flags.transactionalIdPrefix,
      maxTransactionalIds: flags.maxTransactionalIds,
    });
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  } finally {
    process.off('SIGINT', onSignal);
  }

  const json = JSON.stringify(report, null, 2);
  if (flags.report) writeFileSync(flags.report, `${json}\n`);
  if (flags.json) {
    console.error(verdictLine(report));
    process.stdout.write(`${json}\n`);
  } else {
    console.log(verdictLine(report));
  }
  return exitCode(report);
}
