import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { addGatewayOptions, parseKafkaPropList, resolveGatewayConfig } from '../../src/gateway/config.js';
import { ConfigurationError } from '../../src/errors.js';

/** Parses argv and env the way `txgate serve` does. */
function parse(argv: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('TXGATE_')) delete process.env[k];
  Object.assign(process.env, env);
  try {
    const cmd = addGatewayOptions(new Command('serve')).exitOverride().configureOutput({ writeErr: () => {} });
    cmd.parse(argv, { from: 'user' });
    return resolveGatewayConfig(cmd.opts());
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

test('defaults', () => {
  const c = parse(['--brokers', '127.0.0.1:9092']);
  assert.deepEqual(c.kafka, { 'bootstrap.servers': '127.0.0.1:9092' });
  assert.deepEqual(c.http, { host: '127.0.0.1', port: 8080, allowInsecureBind: false });
  assert.equal(c.pool.instanceId, os.hostname());
  assert.equal(c.pool.transactionalIdPrefix, 'txgate');
  assert.equal(c.limits.maxBodyBytes, 1048576);
  assert.equal(c.limits.maxRecords, 1000);
  assert.ok(c.limits.maxRecordBytes < 1_000_000);
  assert.deepEqual(c.apiKeys, []);
  assert.equal(c.idempotencyTopic, 'txgate.idempotency');
});

test('environment variables, and flags over them', () => {
  const env = {
    TXGATE_BROKERS: 'k1:9092,k2:9092',
    TXGATE_KAFKA_PROPS: 'security.protocol=SASL_SSL\nsasl.mechanisms=PLAIN\nssl.cipher.suites=A,B',
    TXGATE_POOL_SIZE: '3',
    TXGATE_PORT: '9000',
    TXGATE_HOST: '0.0.0.0',
    TXGATE_API_KEYS: 'svc:tok-0123456789abcdef:orders',
    TXGATE_MAX_RECORDS: '10',
    TXGATE_LOG_LEVEL: 'warn',
    TXGATE_INSTANCE_ID: 'gw-1',
  };
  const c = parse(['--pool-size', '5', '--kafka-prop', 'sasl.password=a=b'], env);
  assert.deepEqual(c.kafka, {
    'bootstrap.servers': 'k1:9092,k2:9092',
    'security.protocol': 'SASL_SSL',
    'sasl.mechanisms': 'PLAIN',
    'ssl.cipher.suites': 'A,B',
    'sasl.password': 'a=b',
  });
  assert.equal(c.pool.size, 5);
  assert.equal(c.pool.instanceId, 'gw-1');
  assert.equal(c.http.port, 9000);
  assert.equal(c.http.host, '0.0.0.0', 'allowed: API keys are configured');
  assert.equal(c.apiKeys[0]!.name, 'svc');
  assert.equal(c.limits.maxRecords, 10);
  assert.equal(c.logLevel, 'warn');
  assert.deepEqual(parseKafkaPropList('a=1,b=2'), { a: '1', b: '2' });
});

test('a non-loopback host needs API keys or an explicit opt-in', () => {
  assert.throws(() => parse(['--brokers', 'k:1', '--host', '0.0.0.0']), (e: unknown) => e instanceof ConfigurationError && /refusing to listen on 0\.0\.0\.0 without API keys/.test(e.message));
  assert.throws(() => parse(['--brokers', 'k:1', '--host', '0.0.0.0'], { TXGATE_ALLOW_INSECURE_BIND: 'false' }), ConfigurationError);
  assert.equal(parse(['--brokers', 'k:1', '--host', '0.0.0.0', '--allow-insecure-bind']).http.allowInsecureBind, true);
  assert.equal(parse(['--brokers', 'k:1', '--host', '0.0.0.0'], { TXGATE_ALLOW_INSECURE_BIND: 'true' }).http.allowInsecureBind, true);
  assert.equal(parse(['--brokers', 'k:1', '--host', '::1']).http.host, '::1');
});

test('API keys from a file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txgate-keys-'));
  const file = path.join(dir, 'keys.json');
  writeFileSync(file, JSON.stringify([{ name: 'a', token: 'tok-0123456789abcdef', topics: ['x*'] }]));
  assert.deepEqual(parse(['--brokers', 'k:1', '--api-keys-file', file]).apiKeys, [{ name: 'a', token: 'tok-0123456789abcdef', topics: ['x*'] }]);
  assert.throws(() => parse(['--brokers', 'k:1', '--api-keys-file', path.join(dir, 'missing')]), /cannot read the API keys file/);
});

test('invalid settings fail with a message naming the setting', () => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [[], {}, /no Kafka brokers: pass --brokers .* or set TXGATE_BROKERS/],
    [['--brokers', 'k:1', '--kafka-prop', 'novalue'], {}, /expected key=value/],
    [['--brokers', 'k:1'], { TXGATE_KAFKA_PROPS: 'transactional.id=x' }, /managed by txgate/],
    [['--brokers', 'k:1'], { TXGATE_KAFKA_PROPS: 'bootstrap.servers=x:1' }, /--brokers/],
    [['--brokers', 'k:1', '--pool-size', '0'], {}, /integer from 1/],
    [['--brokers', 'k:1'], { TXGATE_PORT: 'http' }, /integer from 0 to 65535, got "http"/],
    [['--brokers', 'k:1', '--log-level', 'loud'], {}, /Allowed choices/],
    [['--brokers', 'k:1', '--instance-id', 'a b'], {}, /--instance-id/],
    [['--brokers', 'k:1', '--max-records', '100', '--max-batch-records', '10'], {}, /could never fit/],
    [['--brokers', 'k:1', '--api-keys', 'x:short:t'], {}, /at least 16/],
  ];
  for (const [argv, env, message] of cases) {
    assert.throws(() => parse(argv, env), (e: unknown) => e instanceof Error && message.test(e.message), `${argv.join(' ')} ${JSON.stringify(env)}`);
  }
});

test('idempotency retention: 24 h by default, from the flag or the environment, never below 10 minutes or a transaction timeout', () => {
  assert.equal(parse(['--brokers', 'k:1']).idempotencyRetentionMs, 86_400_000);
  assert.equal(parse(['--brokers', 'k:1'], { TXGATE_IDEMPOTENCY_RETENTION_MS: '3600000' }).idempotencyRetentionMs, 3_600_000);
  assert.equal(parse(['--brokers', 'k:1', '--idempotency-retention-ms', '600000'], { TXGATE_IDEMPOTENCY_RETENTION_MS: '3600000' }).idempotencyRetentionMs, 600_000);
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--idempotency-retention-ms', '599999'], {}, /--idempotency-retention-ms \/ TXGATE_IDEMPOTENCY_RETENTION_MS must be at least 600000/],
    [[], { TXGATE_IDEMPOTENCY_RETENTION_MS: '2000' }, /must be at least 600000 \(10 minutes\), got 2000/],
    [['--idempotency-retention-ms', '1d'], {}, /integer from 1/],
    [['--idempotency-retention-ms', '900000', '--kafka-prop', 'transaction.timeout.ms=900000'], {}, /longer than the Kafka property transaction\.timeout\.ms \(900000\)/],
  ];
  for (const [argv, env, message] of cases) {
    assert.throws(() => parse(['--brokers', 'k:1', ...argv], env), (e: unknown) => e instanceof Error && message.test(e.message), `${argv.join(' ')} ${JSON.stringify(env)}`);
  }
  assert.equal(parse(['--brokers', 'k:1', '--idempotency-retention-ms', '900001', '--kafka-prop', 'transaction.timeout.ms=900000']).idempotencyRetentionMs, 900_001);
  assert.throws(() => resolveGatewayConfig({ brokers: 'k:1', idempotencyRetentionMs: 60_000 }), ConfigurationError);
});

test('HTTP timeouts: defaults, flags and variables; the headers timeout may not exceed the request timeout', () => {
  const d = parse(['--brokers', 'k:1']).limits;
  assert.equal(d.headersTimeoutMs, 10_000);
  assert.equal(d.requestTimeoutMs, 30_000);
  assert.equal(d.lingerMs, 5_000);
  const c = parse(['--brokers', 'k:1', '--request-timeout-ms', '60000'], { TXGATE_HEADERS_TIMEOUT_MS: '5000' }).limits;
  assert.equal(c.headersTimeoutMs, 5_000);
  assert.equal(c.requestTimeoutMs, 60_000);
  assert.throws(() => parse(['--brokers', 'k:1', '--headers-timeout-ms', '40000']), (e: unknown) => e instanceof ConfigurationError && /--headers-timeout-ms \(40000\) is above --request-timeout-ms \(30000\)/.test(e.message));
  assert.throws(() => parse(['--brokers', 'k:1', '--request-timeout-ms', '10']), /expected an integer from 1000/);
});
