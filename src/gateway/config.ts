/**
 * The gateway's configuration: every setting is a commander Option with an environment variable
 * (TXGATE_*), so `txgate serve --help` lists them all and containers configure it by env alone.
 * resolveGatewayConfig() turns the parsed option values into a validated GatewayConfig and fails
 * with a message that names the flag and the variable.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ConfigurationError } from '../errors.js';
import { parseApiKeys, type ApiKeySpec } from './http/auth.js';
import {
  DEFAULT_ACQUIRE_TIMEOUT_MS,
  DEFAULT_COMMIT_TIMEOUT_MS,
  DEFAULT_GATEWAY_LIMITS,
  DEFAULT_IDEMPOTENCY_RETENTION_MS,
  DEFAULT_IDEMPOTENCY_TOPIC,
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_BATCH_RECORDS,
  DEFAULT_MAX_BATCH_REQUESTS,
  DEFAULT_START_TIMEOUT_MS,
  type GatewayLimits,
} from './defaults.js';

import type { KafkaProps } from '../kafka/props.js';
import { otlpTracesUrl } from './tracing.js';

export interface GatewayConfig {
  /** librdkafka client properties: bootstrap.servers plus any TLS/SASL/tuning passthrough. */
  kafka: { 'bootstrap.servers': string } & KafkaProps;
  pool: {
    size: number;
    maxWaiting: number;
    acquireTimeoutMs: number;
    /** Per commit call; a commit that times out is retried until retryDeadlineMs, then reported unknown (504). */
    commitTimeoutMs?: number;
    retryDeadlineMs?: number;
    instanceId: string;
    transactionalIdPrefix: string;
  };
  http: { host: string; port: number; allowInsecureBind: boolean };
  limits: GatewayLimits;
  apiKeys: ApiKeySpec[];
  groupCommit: { maxBatchRequests: number; maxBatchRecords: number; maxBatchBytes: number };
  idempotencyTopic: string;
  /** How long an idempotency key is answered after its request committed (resolveGatewayConfig always sets it; default 24 h). */
  idempotencyRetentionMs?: number;
  shutdownTimeoutMs: number;
  /**
   * How long start-up may keep retrying the steps that need the cluster (producers, the
   * idempotency topic) before the gateway gives up (resolveGatewayConfig always sets it; default 5 min).
   */
  startTimeoutMs?: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * Tracing: spans go over OTLP/HTTP to `otlpEndpoint` (the full traces URL). Unset, OpenTelemetry's
   * own environment variables decide (src/gateway/tracing.ts); with neither, tracing is off.
   */
  tracing?: { otlpEndpoint?: string | undefined };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);
/**
 * An expired key must never meet its own transaction still open (store.ts's header): keep the
 * retention far above any transaction's lifetime (transaction.timeout.ms: 60 s by default, 15 min
 * at most on a default broker).
 */
export const MIN_IDEMPOTENCY_RETENTION_MS = 10 * 60_000;

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value.trim());
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };
}

function bool(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

/** "key=value"; the value keeps any further "=" (SASL JAAS-style values have them). */
export function parseKafkaProp(entry: string): [string, string] {
  const at = entry.indexOf('=');
  const key = entry.slice(0, at).trim();
  if (at <= 0 || key === '') throw new InvalidArgumentError(`expected key=value, got "${entry}"`);
  return [key, entry.slice(at + 1).trim()];
}

/** TXGATE_KAFKA_PROPS: key=value entries separated by newlines, or by commas when there is no newline. */
export function parseKafkaPropList(text: string): KafkaProps {
  const entries = (text.includes('\n') ? text.split('\n') : text.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  return Object.fromEntries(entries.map(parseKafkaProp));
}

/** Adds every gateway option to `cmd` (used by `txgate serve`, reusable by `txgate start`). */
export function addGatewayOptions(cmd: Command): Command {
  const d = DEFAULT_GATEWAY_LIMITS;
  const options = [
    new Option('--brokers <host:port,...>', 'Kafka bootstrap servers (required)').env('TXGATE_BROKERS'),
    new Option('--kafka-props <list>', 'librdkafka client properties for TLS/SASL/tuning: key=value, separated by commas or newlines').env('TXGATE_KAFKA_PROPS'),
    new Option('--kafka-prop <key=value>', 'one librdkafka client property (repeatable; wins over --kafka-props)')
      .argParser((v: string, prev: string[] | undefined) => {
        parseKafkaProp(v); // fail on the flag that is wrong, before anything starts
        return [...(prev ?? []), v];
      }),
    new Option('--pool-size <n>', 'transactional producers in the pool').env('TXGATE_POOL_SIZE').argParser(integer(1, 256)).default(8),
    new Option('--pool-max-waiting <n>', 'transactions that may wait for a producer before requests are refused with 503').env('TXGATE_POOL_MAX_WAITING').argParser(integer(0)).default(512),
    new Option('--acquire-timeout-ms <ms>', 'how long a transaction waits for a free producer before 503').env('TXGATE_ACQUIRE_TIMEOUT_MS').argParser(integer(1)).default(DEFAULT_ACQUIRE_TIMEOUT_MS),
    new Option('--commit-timeout-ms <ms>', 'how long one commit call may take before it is retried').env('TXGATE_COMMIT_TIMEOUT_MS').argParser(integer(100)).default(DEFAULT_COMMIT_TIMEOUT_MS),
    new Option('--retry-deadline-ms <ms>', 'how long retriable transactional calls (a timed-out commit, CONCURRENT_TRANSACTIONS) are retried; past it a commit\'s outcome is unknown (504)')
      .env('TXGATE_RETRY_DEADLINE_MS')
      .argParser(integer(100))
      .default(30_000),
    new Option('--instance-id <id>', 'this instance in transactional ids (<prefix>-<instance>-<slot>); must be unique among running instances and stable across restarts')
      .env('TXGATE_INSTANCE_ID')
      .default(os.hostname(), 'the host name'),
    new Option('--transactional-id-prefix <prefix>', 'prefix of the transactional ids').env('TXGATE_TRANSACTIONAL_ID_PREFIX').default('txgate'),
    new Option('--host <address>', 'address to listen on').env('TXGATE_HOST').default('127.0.0.1'),
    new Option('--port <port>', 'port to listen on (0: any free port)').env('TXGATE_PORT').argParser(integer(0, 65535)).default(8080),
    // An optional value (not a plain flag) so that TXGATE_ALLOW_INSECURE_BIND=false means false.
    new Option('--allow-insecure-bind [bool]', 'allow a non-loopback --host without API keys (anyone who can reach the port can write)')
      .env('TXGATE_ALLOW_INSECURE_BIND')
      .preset('true')
      .argParser(bool),
    new Option('--api-keys <keys>', 'API keys: JSON [{"name","token","topics":[...]}] or name:token:topic1,prefix*;name2:token2:* (prefer the env var or a file: arguments show in ps)').env('TXGATE_API_KEYS'),
    new Option('--api-keys-file <path>', 'file holding API keys in either format of --api-keys').env('TXGATE_API_KEYS_FILE'),
    new Option('--max-body-bytes <n>', 'largest request body').env('TXGATE_MAX_BODY_BYTES').argParser(integer(1024)).default(d.maxBodyBytes),
    new Option('--max-records <n>', 'most records in one request').env('TXGATE_MAX_RECORDS').argParser(integer(1)).default(d.maxRecords),
    new Option('--max-record-bytes <n>', "largest record (key + value + headers); keep it below the topics' max.message.bytes").env('TXGATE_MAX_RECORD_BYTES').argParser(integer(1)).default(d.maxRecordBytes),
    new Option('--max-headers <n>', 'most headers on one record').env('TXGATE_MAX_HEADERS').argParser(integer(0)).default(d.maxHeadersPerRecord),
    new Option('--headers-timeout-ms <ms>', 'time a client has to send the request line and headers; slower clients get 408 and are disconnected')
      .env('TXGATE_HEADERS_TIMEOUT_MS')
      .argParser(integer(1_000))
      .default(d.headersTimeoutMs),
    new Option('--request-timeout-ms <ms>', 'time a client has to send a whole request, headers and body; slower clients get 408 and are disconnected')
      .env('TXGATE_REQUEST_TIMEOUT_MS')
      .argParser(integer(1_000))
      .default(d.requestTimeoutMs),
    new Option('--max-batch-requests <n>', 'group commit: most requests packed into one transaction (a batch takes every request waiting for a producer, up to this)').env('TXGATE_MAX_BATCH_REQUESTS').argParser(integer(1)).default(DEFAULT_MAX_BATCH_REQUESTS),
    new Option('--max-batch-records <n>', 'group commit: most records in one transaction').env('TXGATE_MAX_BATCH_RECORDS').argParser(integer(1)).default(DEFAULT_MAX_BATCH_RECORDS),
    new Option('--max-batch-bytes <n>', 'group commit: most bytes (keys, values, headers) in one transaction').env('TXGATE_MAX_BATCH_BYTES').argParser(integer(1)).default(DEFAULT_MAX_BATCH_BYTES, '16777216 (16 MiB)'),
    new Option('--idempotency-topic <topic>', 'compacted topic that records idempotency keys (created if missing)').env('TXGATE_IDEMPOTENCY_TOPIC').default(DEFAULT_IDEMPOTENCY_TOPIC),
    new Option('--idempotency-retention-ms <ms>', `how long an idempotency key is remembered after its request committed (at least ${MIN_IDEMPOTENCY_RETENTION_MS}); later, a retry runs as a new request`)
      .env('TXGATE_IDEMPOTENCY_RETENTION_MS')
      .argParser(integer(1))
      .default(DEFAULT_IDEMPOTENCY_RETENTION_MS, '86400000 (24 h)'),
    new Option('--start-timeout-ms <ms>', 'how long start-up retries what needs Kafka (producers, the idempotency topic) before giving up; meanwhile /readyz says why it is not ready')
      .env('TXGATE_START_TIMEOUT_MS')
      .argParser(integer(1_000))
      .default(DEFAULT_START_TIMEOUT_MS, '300000 (5 min)'),
    new Option('--shutdown-timeout-ms <ms>', 'on SIGTERM/SIGINT: how long in-flight transactions may take to finish').env('TXGATE_SHUTDOWN_TIMEOUT_MS').argParser(integer(0)).default(30_000),
    new Option('--log-level <level>', 'log level').env('TXGATE_LOG_LEVEL').choices([...LOG_LEVELS]).default('info'),
    new Option(
      '--otlp-endpoint <url>',
      'trace requests and export the spans over OTLP/HTTP to this collector URL (e.g. http://collector:4318; /v1/traces is added to a bare address); OTEL_EXPORTER_OTLP_ENDPOINT and the other OTEL_* variables work too',
    ).env('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'),
  ];
  for (const option of options) cmd.addOption(option);
  return cmd;
}

/** The option values commander produces for addGatewayOptions() (camelCase keys). */
export interface GatewayOptionValues {
  brokers?: string;
  kafkaProps?: string;
  kafkaProp?: string[];
  poolSize?: number;
  poolMaxWaiting?: number;
  acquireTimeoutMs?: number;
  commitTimeoutMs?: number;
  retryDeadlineMs?: number;
  instanceId?: string;
  transactionalIdPrefix?: string;
  host?: string;
  port?: number;
  allowInsecureBind?: boolean;
  apiKeys?: string;
  apiKeysFile?: string;
  maxBodyBytes?: number;
  maxRecords?: number;
  maxRecordBytes?: number;
  maxHeaders?: number;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxBatchRequests?: number;
  maxBatchRecords?: number;
  maxBatchBytes?: number;
  idempotencyTopic?: string;
  idempotencyRetentionMs?: number;
  shutdownTimeoutMs?: number;
  startTimeoutMs?: number;
  logLevel?: string;
  otlpEndpoint?: string;
}

const ID_PATTERN = /^[A-Za-z0-9._-]+$/;

export function resolveGatewayConfig(values: GatewayOptionValues): GatewayConfig {
  const d = DEFAULT_GATEWAY_LIMITS;
  const brokers = values.brokers?.trim();
  if (!brokers) throw new ConfigurationError('no Kafka brokers: pass --brokers host:port[,host:port...] or set TXGATE_BROKERS');

  const kafka: GatewayConfig['kafka'] = { 'bootstrap.servers': brokers };
  try {
    Object.assign(kafka, values.kafkaProps ? parseKafkaPropList(values.kafkaProps) : {});
    for (const entry of values.kafkaProp ?? []) {
      const [k, v] = parseKafkaProp(entry);
      kafka[k] = v;
    }
  } catch (err) {
    throw new ConfigurationError(`--kafka-props / TXGATE_KAFKA_PROPS / --kafka-prop: ${(err as Error).message}`);
  }
  if (kafka['bootstrap.servers'] !== brokers) {
    throw new ConfigurationError('set the brokers with --brokers / TXGATE_BROKERS, not as a bootstrap.servers Kafka property');
  }
  for (const reserved of ['transactional.id', 'enable.idempotence']) {
    if (reserved in kafka) throw new ConfigurationError(`the Kafka property "${reserved}" is managed by txgate; remove it`);
  }

  let apiKeys: ApiKeySpec[] = [];
  if (values.apiKeys && values.apiKeysFile) {
    throw new ConfigurationError('give API keys either with --api-keys / TXGATE_API_KEYS or with --api-keys-file / TXGATE_API_KEYS_FILE, not both');
  }
  if (values.apiKeys) apiKeys = parseApiKeys(values.apiKeys);
  if (values.apiKeysFile) {
    let text: string;
    try {
      text = readFileSync(values.apiKeysFile, 'utf8');
    } catch (err) {
      throw new ConfigurationError(`cannot read the API keys file ${values.apiKeysFile}: ${(err as Error).message}`);
    }
    apiKeys = parseApiKeys(text);
    if (apiKeys.length === 0) throw new ConfigurationError(`the API keys file ${values.apiKeysFile} holds no keys`);
  }

  const host = values.host ?? '127.0.0.1';
  const allowInsecureBind = values.allowInsecureBind ?? false;
  if (apiKeys.length === 0 && !LOOPBACK_HOSTS.has(host) && !allowInsecureBind) {
    throw new ConfigurationError(
      `refusing to listen on ${host} without API keys: anyone who can reach it could write to Kafka. ` +
        'Configure API keys (--api-keys / TXGATE_API_KEYS), listen on 127.0.0.1, or pass --allow-insecure-bind (TXGATE_ALLOW_INSECURE_BIND=true) if something in front of the gateway authenticates',
    );
  }

  const instanceId = values.instanceId ?? os.hostname();
  const prefix = values.transactionalIdPrefix ?? 'txgate';
  if (!ID_PATTERN.test(instanceId)) throw new ConfigurationError(`--instance-id / TXGATE_INSTANCE_ID "${instanceId}" may only use A-Z, a-z, 0-9, ".", "_", "-"`);
  if (!ID_PATTERN.test(prefix)) throw new ConfigurationError(`--transactional-id-prefix / TXGATE_TRANSACTIONAL_ID_PREFIX "${prefix}" may only use A-Z, a-z, 0-9, ".", "_", "-"`);

  const limits: GatewayLimits = {
    maxBodyBytes: values.maxBodyBytes ?? d.maxBodyBytes,
    maxRecords: values.maxRecords ?? d.maxRecords,
    maxRecordBytes: values.maxRecordBytes ?? d.maxRecordBytes,
    maxHeadersPerRecord: values.maxHeaders ?? d.maxHeadersPerRecord,
    headersTimeoutMs: values.headersTimeoutMs ?? d.headersTimeoutMs,
    requestTimeoutMs: values.requestTimeoutMs ?? d.requestTimeoutMs,
    lingerMs: d.lingerMs,
  };
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new ConfigurationError(
      `--headers-timeout-ms (${limits.headersTimeoutMs}) is above --request-timeout-ms (${limits.requestTimeoutMs}): the headers are part of the request`,
    );
  }
  const groupCommit = {
    maxBatchRequests: values.maxBatchRequests ?? DEFAULT_MAX_BATCH_REQUESTS,
    maxBatchRecords: values.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS,
    maxBatchBytes: values.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES,
  };
  if (groupCommit.maxBatchRecords < limits.maxRecords) {
    throw new ConfigurationError(
      `--max-batch-records (${groupCommit.maxBatchRecords}) is below --max-records (${limits.maxRecords}): a full request could never fit a transaction`,
    );
  }

  const logLevel = (values.logLevel ?? 'info') as GatewayConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigurationError(`--log-level / TXGATE_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  const otlpEndpoint = values.otlpEndpoint?.trim() ? otlpTracesUrl(values.otlpEndpoint) : undefined;
  const idempotencyTopic = values.idempotencyTopic ?? DEFAULT_IDEMPOTENCY_TOPIC;
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(idempotencyTopic)) throw new ConfigurationError(`--idempotency-topic "${idempotencyTopic}" is not a valid Kafka topic name`);
  const idempotencyRetentionMs = values.idempotencyRetentionMs ?? DEFAULT_IDEMPOTENCY_RETENTION_MS;
  if (!Number.isSafeInteger(idempotencyRetentionMs) || idempotencyRetentionMs < MIN_IDEMPOTENCY_RETENTION_MS) {
    throw new ConfigurationError(
      `--idempotency-retention-ms / TXGATE_IDEMPOTENCY_RETENTION_MS must be at least ${MIN_IDEMPOTENCY_RETENTION_MS} (10 minutes), got ${idempotencyRetentionMs}: ` +
        'a key must outlive any transaction that may still be writing it',
    );
  }
  const transactionTimeoutMs = Number(kafka['transaction.timeout.ms'] ?? 0);
  if (transactionTimeoutMs > 0 && idempotencyRetentionMs <= transactionTimeoutMs) {
    throw new ConfigurationError(
      `--idempotency-retention-ms (${idempotencyRetentionMs}) must be longer than the Kafka property transaction.timeout.ms (${transactionTimeoutMs}): ` +
        'a key must outlive any transaction that may still be writing it',
    );
  }

  return {
    kafka,
    pool: {
      size: values.poolSize ?? 8,
      maxWaiting: values.poolMaxWaiting ?? 512,
      acquireTimeoutMs: values.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS,
      commitTimeoutMs: values.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS,
      retryDeadlineMs: values.retryDeadlineMs ?? 30_000,
      instanceId,
      transactionalIdPrefix: prefix,
    },
    http: { host, port: values.port ?? 8080, allowInsecureBind },
    limits,
    apiKeys,
    groupCommit,
    idempotencyTopic,
    idempotencyRetentionMs,
    shutdownTimeoutMs: values.shutdownTimeoutMs ?? 30_000,
    startTimeoutMs: values.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    logLevel,
    tracing: { otlpEndpoint },
  };
}
