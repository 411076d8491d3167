/**
 * The ground txgate stands on, checked against a real broker with the native client's low-level
 * transactional API (no txgate code in between): commit and abort visibility, fencing by
 * transactional.id, a 3-node cluster with acks=all, and the CLI's libuv thread-pool sizing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { LocalKafkaCluster } from '../../src/local-kafka/cluster.js';
import { runLauncher } from '../../src/local-kafka/launcher.js';
import { consumeAll, createTopics, testBootstrap, uniqueName, type ConsumedRecord } from '../support/kafka.js';
import { CLUSTER_BASE_PORT, withPortLock } from '../support/ports.js';

const ERR = RdKafka.CODES.ERRORS;
/** What a fenced producer's calls may fail with: librdkafka's local _FENCED, or the broker's codes. */
const FENCING_CODES = [ERR.ERR__FENCED, ERR.ERR_PRODUCER_FENCED, ERR.ERR_INVALID_PRODUCER_EPOCH];

type KafkaError = RdKafka.LibrdKafkaError;

// ---------------------------------------------------------------- the low-level API, promisified
class TxProducer {
  private pending = new Map<number, { resolve: (r: RdKafka.DeliveryReport) => void; reject: (e: KafkaError) => void }>();
  private nextOpaque = 0;
  readonly errors: KafkaError[] = [];

  private constructor(readonly producer: RdKafka.Producer) {
    producer.on('delivery-report', (err, report) => {
      const waiter = this.pending.get(report.opaque as number);
      if (!waiter) return;
      this.pending.delete(report.opaque as number);
      if (err) waiter.reject(err);
      else waiter.resolve(report);
    });
    producer.on('event.error', (err) => this.errors.push(err));
  }

  static async connect(bootstrap: string, transactionalId: string, extra: Record<string, unknown> = {}): Promise<TxProducer> {
    const producer = new RdKafka.Producer({
      'bootstrap.servers': bootstrap,
      'transactional.id': transactionalId,
      dr_cb: true,
      // librdkafka's console logging would drown the test output; errors come as events
      log_level: 0,
      ...extra,
    } as RdKafka.ProducerGlobalConfig);
    const p = new TxProducer(producer);
    await new Promise<void>((resolve, reject) => {
      producer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve()));
    });
    producer.setPollInterval(10); // delivery reports are only emitted when the client is polled
    return p;
  }

  private call(op: (cb: (err: KafkaError) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => op((err) => (err ? reject(err) : resolve())));
  }

  init(): Promise<void> {
    return this.call((cb) => this.producer.initTransactions(30_000, cb));
  }
  begin(): Promise<void> {
    return this.call((cb) => this.producer.beginTransaction(cb));
  }
  commit(): Promise<void> {
    return this.call((cb) => this.producer.commitTransaction(30_000, cb));
  }
  abort(): Promise<void> {
    return this.call((cb) => this.producer.abortTransaction(30_000, cb));
  }

  /** Produces one record and resolves with its delivery report. */
  send(topic: string, value: string, opts: { key?: string; partition?: number; headers?: Record<string, string> } = {}): Promise<RdKafka.DeliveryReport> {
    const opaque = this.nextOpaque++;
    const delivered = new Promise<RdKafka.DeliveryReport>((resolve, reject) => this.pending.set(opaque, { resolve, reject }));
    const headers = opts.headers ? Object.entries(opts.headers).map(([k, v]) => ({ [k]: v })) : undefined;
    this.producer.produce(topic, opts.partition ?? null, Buffer.from(value), opts.key ?? null, Date.now(), opaque, headers);
    return delivered;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.producer.setPollInterval(0);
      this.producer.disconnect(5_000, () => resolve());
    });
  }
}

/** The call's rejection, which must happen. */
async function failureOf(p: Promise<unknown>): Promise<KafkaError> {
  try {
    await p;
  } catch (err) {
    return err as KafkaError;
  }
  assert.fail('expected the call to fail');
}

const flags = (e: KafkaError) =>
  JSON.stringify({ code: e.code, message: e.message, isFatal: e.isFatal, isRetriable: e.isRetriable, isTxnRequiresAbort: e.isTxnRequiresAbort });

const values = (records: ConsumedRecord[]) => records.map((r) => r.value?.toString());

// ---------------------------------------------------------------- single broker (the run's test broker)
describe('transactions on the test broker', () => {
  const bootstrap = testBootstrap();
  const producers: TxProducer[] = [];
  const open = async (txid: string) => {
    const p = await TxProducer.connect(bootstrap, txid);
    producers.push(p);
    return p;
  };
  after(async () => {
    await Promise.all(producers.map((p) => p.close()));
  });

  it('a committed transaction becomes visible to read_committed readers at commit, not before', async () => {
    const topic = uniqueName('fnd-commit');
    await createTopics(bootstrap, [{ topic, partitions: 3 }]);
    const p = await open(uniqueName('fnd-commit-tx'));
    await p.init();
    await p.begin();
    const reports = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => p.send(topic, `v${i}`, { key: `k${i}`, partition: i % 3, headers: { 'x-n': String(i) } })),
    );
    assert.deepEqual(reports.map((r) => r.partition), [0, 1, 2, 0, 1]);

    // delivered to the log, but the transaction is still open
    assert.deepEqual(await consumeAll(bootstrap, topic, { isolation: 'read_committed' }), []);
    assert.equal((await consumeAll(bootstrap, topic, { isolation: 'read_uncommitted' })).length, 5);

    await p.commit();
    const seen = await consumeAll(bootstrap, topic, { isolation: 'read_committed' });
    assert.deepEqual(values(seen).sort(), ['v0', 'v1', 'v2', 'v3', 'v4']);
    for (const r of seen) {
      const i = Number(r.value?.toString().slice(1));
      assert.equal(r.key?.toString(), `k${i}`);
      assert.equal(r.partition, i % 3);
      assert.deepEqual(r.headers.map((h) => [h.key, h.value.toString()]), [['x-n', String(i)]]);
      const report = reports[i]!;
      assert.equal(r.offset, String(report.offset));
    }
  });

  it("an aborted transaction's records are never seen by read_committed readers, but are by read_uncommitted ones", async () => {
    const topic = uniqueName('fnd-abort');
    await createTopics(bootstrap, [{ topic, partitions: 2 }]);
    const p = await open(uniqueName('fnd-abort-tx'));
    await p.init();

    await p.begin();
    await Promise.all(['a1', 'a2', 'a3'].map((v, i) => p.send(topic, v, { partition: i % 2 })));
    await p.abort();
    // a later committed transaction on the same producer: the abort did not break it
    await p.begin();
    await Promise.all(['c1', 'c2'].map((v, i) => p.send(topic, v, { partition: i % 2 })));
    await p.commit();
    // and an aborted one last, so the logs end in abort markers
    await p.begin();
    await Promise.all(['z1', 'z2'].map((v, i) => p.send(topic, v, { partition: i % 2 })));
    await p.abort();

    assert.deepEqual(values(await consumeAll(bootstrap, topic, { isolation: 'read_committed' })).sort(), ['c1', 'c2']);
    assert.deepEqual(
      values(await consumeAll(bootstrap, topic, { isolation: 'read_uncommitted' })).sort(),
      ['a1', 'a2', 'a3', 'c1', 'c2', 'z1', 'z2'],
    );
  });

  it('a second producer with the same transactional.id fences the first: its open transaction is aborted and its commit fails as fenced', async (t) => {
    const topic = uniqueName('fnd-fence');
    await createTopics(bootstrap, [{ topic, partitions: 1 }]);
    const txid = uniqueName('fnd-fence-tx');
    const zombie = await open(txid);
    await zombie.init();
    await zombie.begin();
    await zombie.send(topic, 'zombie');

    const successor = await open(txid);
    await successor.init();

    const commitErr = await failureOf(zombie.commit());
    t.diagnostic(`fenced commit: ${flags(commitErr)}`);
    assert.ok(FENCING_CODES.includes(commitErr.code), `a fencing code, got ${flags(commitErr)}`);
    assert.equal(commitErr.isFatal, true, 'fencing is fatal for the producer instance');
    assert.equal(commitErr.isTxnRequiresAbort, false);
    assert.equal(commitErr.isRetriable, false);

    // the fenced instance stays dead: every further transactional call fails the same way
    const abortErr = await failureOf(zombie.abort());
    t.diagnostic(`abort after fencing: ${flags(abortErr)}`);
    assert.ok(FENCING_CODES.includes(abortErr.code));
    const beginErr = await failureOf(zombie.begin());
    t.diagnostic(`begin after fencing: ${flags(beginErr)}`);
    assert.ok(FENCING_CODES.includes(beginErr.code));

    await successor.begin();
    await successor.send(topic, 'successor');
    await successor.commit();
    assert.deepEqual(values(await consumeAll(bootstrap, topic, { isolation: 'read_committed' })), ['successor']);
    assert.deepEqual(values(await consumeAll(bootstrap, topic, { isolation: 'read_uncommitted' })), ['zombie', 'successor']);
  });

  it('an idle producer fenced between transactions fails its next transaction as fenced', async (t) => {
    const topic = uniqueName('fnd-fence-idle');
    await createTopics(bootstrap, [{ topic, partitions: 1 }]);
    const txid = uniqueName('fnd-fence-idle-tx');
    const zombie = await open(txid);
    await zombie.init();
    await zombie.begin();
    await zombie.send(topic, 'before');
    await zombie.commit();

    const successor = await open(txid);
    await successor.init();

    // begin is local to the client, so it cannot know yet; the first broker round trip tells
    await zombie.begin();
    const deliveryErr = await failureOf(zombie.send(topic, 'after'));
    t.diagnostic(`delivery report of the fenced producer: ${flags(deliveryErr)}`);
    const commitErr = await failureOf(zombie.commit());
    t.diagnostic(`commit of the fenced producer: ${flags(commitErr)}`);
    t.diagnostic(`error events of the fenced producer: ${zombie.errors.map(flags).join(' ') || 'none'}`);
    assert.ok(FENCING_CODES.includes(commitErr.code), `a fencing code, got ${flags(commitErr)}`);
    assert.equal(commitErr.isFatal, true);

    assert.deepEqual(values(await consumeAll(bootstrap, topic, { isolation: 'read_uncommitted' })), ['before']);
  });
});

// ---------------------------------------------------------------- 3-node cluster (its own ports)
describe('a 3-node cluster (replication factor 3, min.insync.replicas 2)', { timeout: 300_000 }, () => {
  it('comes up, accepts a transaction with acks=all, and stops', async (t) => {
    await withPortLock('cluster', async () => {
      const stateDir = mkdtempSync(path.join(tmpdir(), 'txgate-fnd-cluster-'));
      const cluster = new LocalKafkaCluster({ basePort: CLUSTER_BASE_PORT, stateDir });
      let producer: TxProducer | undefined;
      try {
        const bootstrap = await cluster.start();
        assert.equal(bootstrap, '127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096');
        assert.deepEqual(await cluster.runningNodes(), [1, 2, 3]);

        const topic = uniqueName('fnd-cluster');
        await createTopics(bootstrap, [{ topic, partitions: 3 }]);
        const described = await runLauncher('topics', ['--describe', '--topic', topic], { KAFKA_BOOTSTRAP: bootstrap });
        t.diagnostic(described.split('\n')[0] ?? '');
        assert.match(described, /ReplicationFactor: 3\b/);
        assert.match(described, /min\.insync\.replicas=2\b/);
        for (const line of described.split('\n').filter((l) => /\bPartition: \d/.test(l))) {
          assert.match(line, /Isr: \d,\d,\d\b/, `every replica in sync: ${line}`);
        }

        producer = await TxProducer.connect(bootstrap, uniqueName('fnd-cluster-tx'), { acks: 'all' });
        await producer.init();
        await producer.begin();
        await Promise.all([0, 1, 2].map((i) => producer!.send(topic, `r${i}`, { partition: i })));
        await producer.commit();
        const seen = await consumeAll(bootstrap, topic, { isolation: 'read_committed' });
        assert.deepEqual(values(seen).sort(), ['r0', 'r1', 'r2']);
      } finally {
        await producer?.close();
        await cluster.stop();
        rmSync(stateDir, { recursive: true, force: true });
      }
      assert.deepEqual(await cluster.runningNodes(), []);
    });
  });
});

// ---------------------------------------------------------------- the CLI's thread pool
describe('bin/txgate.cjs', () => {
  it("enlarges libuv's thread pool before anything uses it", async () => {
    // 8 fs.open() calls on FIFOs without a writer each hold a pool thread until released. A
    // 9th pool job (fs.stat) then finishes first only if the pool has more than 8 threads; with
    // libuv's default of 4 it waits until the FIFOs are released (after 3 s).
    const bin = fileURLToPath(new URL('../../bin/txgate.cjs', import.meta.url));
    const probe = `
      process.argv = [process.argv[0], 'txgate', 'kafka', 'bootstrap']; // a command that neither exits nor touches Kafka
      require(${JSON.stringify(bin)});
      const fs = require('fs'), path = require('path'), { execFileSync } = require('child_process');
      const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'txgate-uv-'));
      const fifos = [...Array(8).keys()].map((i) => path.join(dir, 'f' + i));
      let opened = 0;
      for (const f of fifos) { execFileSync('mkfifo', [f]); fs.open(f, 'r', (e, fd) => { opened++; if (fd) fs.closeSync(fd); }); }
      let released = false;
      // a writer's non-blocking open succeeds only for a FIFO whose reader is already waiting in
      // a pool thread; the queued ones get theirs on a later round
      const release = () => {
        released = true;
        for (const f of fifos) { try { fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)); } catch {} }
        if (opened < fifos.length) setTimeout(release, 20);
      };
      const timer = setTimeout(release, 3000);
      fs.stat(dir, () => {
        const verdict = released ? 'queued' : 'ran';
        clearTimeout(timer);
        if (!released) release();
        setTimeout(() => { fs.rmSync(dir, { recursive: true }); process.stderr.write('\\n' + verdict + ' ' + process.env.UV_THREADPOOL_SIZE + '\\n'); }, 100);
      });
    `;
    const run = (env: NodeJS.ProcessEnv) =>
      new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['-e', probe], { env, timeout: 30_000 }, (err, _out, stderr) =>
          err ? reject(err) : resolve(stderr.trim().split('\n').pop() ?? ''),
        );
      });
    const env = { ...process.env };
    delete env.UV_THREADPOOL_SIZE;
    assert.equal(await run(env), 'ran 64');
    // a user's own setting wins (and the probe can tell a small pool)
    assert.equal(await run({ ...env, UV_THREADPOOL_SIZE: '4' }), 'queued 4');
  });
});
