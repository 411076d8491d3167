/**
 * The local Kafka launcher (scripts/kafka-local.sh through src/local-kafka) and `txgate start`.
 * Brokers here run on the launcher-test port (39192/39193) under a machine-wide lock, each with
 * its own state directory.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { fetchKafkaJars, KafkaLauncherError } from '../../src/local-kafka/launcher.js';
import { LocalKafka } from '../../src/local-kafka/single-node.js';
import { consumeAll, createTopics, uniqueName, waitFor } from '../support/kafka.js';
import { LAUNCHER_TEST_PORT, withPortLock } from '../support/ports.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'txgate-launcher-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A directory with an `mvn` that only records that it was called, to put first on PATH. */
function fakeMaven(): { pathEnv: string; calls: string } {
  const dir = mkdtempSync(path.join(scratch, 'fake-mvn-'));
  const calls = path.join(dir, 'calls');
  writeFileSync(path.join(dir, 'mvn'), `#!/bin/sh\necho "$@" >> "${calls}"\nexit 1\n`);
  chmodSync(path.join(dir, 'mvn'), 0o755);
  return { pathEnv: `${dir}:${process.env.PATH ?? ''}`, calls };
}

async function produceOne(bootstrap: string, topic: string, value: string): Promise<void> {
  const producer = new RdKafka.Producer({ 'bootstrap.servers': bootstrap, dr_cb: true, 'enable.idempotence': true, log_level: 0 });
  await new Promise<void>((resolve, reject) => producer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  producer.setPollInterval(10);
  try {
    await new Promise<void>((resolve, reject) => {
      producer.once('delivery-report', (err) => (err ? reject(err) : resolve()));
      producer.produce(topic, null, Buffer.from(value), null);
    });
  } finally {
    producer.setPollInterval(0);
    await new Promise<void>((resolve) => producer.disconnect(5_000, () => resolve()));
  }
}

describe('kafka-local.sh fetch', () => {
  it('a second fetch uses the cache and never runs Maven', async () => {
    // setup.sh has fetched into the default cache; a failing fake mvn first on PATH proves no resolution
    const mvn = fakeMaven();
    const lib = await fetchKafkaJars({ env: { PATH: mvn.pathEnv } });
    assert.equal(existsSync(mvn.calls), false, 'mvn was not called');
    assert.ok(existsSync(path.join(lib, '.complete')));
    assert.ok(readdirSync(lib).some((f) => /^kafka_2\.13-4\.\d+\.\d+\.jar$/.test(f)), `the broker jar is in ${lib}`);
  });

  it('an empty cache does run Maven (so the check above can fail), and a failed resolution says so', async () => {
    const mvn = fakeMaven();
    const err = await fetchKafkaJars({ cacheDir: path.join(scratch, 'empty-cache'), env: { PATH: mvn.pathEnv } }).then(
      () => assert.fail('fetch should fail with a failing mvn'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof KafkaLauncherError);
    assert.match(err.message, /mvn could not resolve Kafka/);
    assert.ok(existsSync(mvn.calls), 'mvn was called');
  });
});

describe('a single local broker', { timeout: 300_000 }, () => {
  it('refuses to start on a port that is taken, with a clear error', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const broker = new LocalKafka({ port, stateDir: path.join(scratch, 'taken') });
      const err = await broker.start().then(
        () => assert.fail('start should fail on a taken port'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof KafkaLauncherError);
      assert.match(err.message, new RegExp(`port ${port} is already in use`));
      assert.equal(await broker.isRunning(), false);
    } finally {
      server.close();
    }
  });

  it('starts on a custom port and state dir, survives kill + restart with its data, and stop removes it', async () => {
    await withPortLock('launcher-test', async () => {
      const stateDir = path.join(scratch, 'single');
      const broker = new LocalKafka({ port: LAUNCHER_TEST_PORT, stateDir });
      const pidFile = path.join(stateDir, 'single', 'pid');
      try {
        const bootstrap = await broker.start();
        assert.equal(bootstrap, `127.0.0.1:${LAUNCHER_TEST_PORT}`);
        const pid = Number(readFileSync(pidFile, 'utf8'));
        assert.ok(pidAlive(pid));
        assert.equal(await broker.pid(), pid);
        assert.match(readFileSync(path.join(stateDir, 'single', 'server.properties'), 'utf8'), new RegExp(`PLAINTEXT://127\\.0\\.0\\.1:${LAUNCHER_TEST_PORT}`));
        assert.equal(await broker.start(), bootstrap, 'start is idempotent');
        assert.equal(await broker.pid(), pid, 'and starts nothing new');

        const topic = uniqueName('launcher-durable');
        await createTopics(bootstrap, [{ topic, partitions: 1 }]);
        await produceOne(bootstrap, topic, 'survives');

        await broker.kill();
        assert.equal(pidAlive(pid), false, 'SIGKILL ended the broker');
        assert.equal(existsSync(pidFile), false);
        assert.equal(await broker.isRunning(), false);
        assert.ok(existsSync(path.join(stateDir, 'single', 'data', 'meta.properties')), 'kill keeps the data');

        assert.equal(await broker.restart(), bootstrap);
        const restartedPid = await broker.pid();
        assert.ok(restartedPid !== undefined && restartedPid !== pid);
        const records = await consumeAll(bootstrap, topic, { isolation: 'read_uncommitted', expected: 1 });
        assert.deepEqual(records.map((r) => r.value?.toString()), ['survives']);

        await broker.stop();
        assert.equal(pidAlive(restartedPid), false);
        assert.equal(existsSync(pidFile), false, 'stop removes the pid file');
        assert.equal(existsSync(path.join(stateDir, 'single')), false, 'stop removes the data');
        assert.equal(await broker.isRunning(), false);
      } finally {
        await broker.stop();
      }
    });
  });
});

describe('txgate start', { timeout: 300_000 }, () => {
  it('brings up a local broker and the gateway, prints a curl that commits, and stops both on SIGTERM', async () => {
    await withPortLock('launcher-test', async () => {
      const stateDir = path.join(scratch, 'cli');
      mkdirSync(stateDir, { recursive: true });
      const env: NodeJS.ProcessEnv = { ...process.env, KAFKA_PORT: String(LAUNCHER_TEST_PORT), KAFKA_LOCAL_STATE: stateDir, TXGATE_PORT: '0' };
      delete env.TXGATE_BROKERS;
      delete env.KAFKA_CONTROLLER_PORT;
      const broker = new LocalKafka({ port: LAUNCHER_TEST_PORT, stateDir });
      const bin = fileURLToPath(new URL('../../bin/txgate.cjs', import.meta.url));
      const child = spawn(process.execPath, [bin, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        await Promise.race([
          waitFor(() => stdout.includes('Press Ctrl-C'), { timeoutMs: 120_000, what: 'txgate start to print how to use it' }),
          exited.then((code) => assert.fail(`txgate start exited early (code ${code}): ${stderr}`)),
        ]);
        const bootstrap = /bootstrap\.servers = (\S+)/.exec(stdout)?.[1];
        assert.equal(bootstrap, `127.0.0.1:${LAUNCHER_TEST_PORT}`);
        assert.match(stdout, /Gateway +http:\/\/127\.0\.0\.1:\d+/);

        // The printed curl, pasted as it is, commits one transaction of two records.
        const curl = /(curl -sS -X POST[^]*?)\n\n/.exec(stdout)?.[1];
        assert.ok(curl, `no curl in: ${stdout}`);
        const response = JSON.parse(execFileSync('bash', ['-c', curl], { encoding: 'utf8' })) as { status: string; records: unknown[] };
        assert.equal(response.status, 'committed');
        assert.equal(response.records.length, 2);
        const records = await consumeAll(bootstrap, 'demo', { isolation: 'read_committed', expected: 2 });
        assert.deepEqual(
          records.map((r) => JSON.parse(r.value!.toString())),
          [{ item: 'book', qty: 1 }, { event: 'reserved' }],
        );

        child.kill('SIGTERM');
        assert.equal(await exited, 0, `txgate start exits cleanly: ${stderr}`);
        assert.equal(await broker.isRunning(), false, 'the broker it started is stopped');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
        await broker.stop();
      }
    });
  });
});
