// Idempotency-key retention against the real broker: past the window a key runs again as new,
// inside it the request replays; a restarted instance does not load expired keys (while the
// broker still holds them); the topic is created with time retention, and an existing topic
// without it gets a warning naming the command that fixes it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runLauncher } from '../../src/local-kafka/launcher.js';
import type { TransactionalProducerPool } from '../../src/pool/pool.js';
import { IdempotencyStore, type Logger } from '../../src/gateway/idempotency/store.js';
import { createKafkaIdempotencyPorts } from '../../src/kafka/idempotency-log.js';
import { RETENTION_MARGIN_MS } from '../../src/gateway/idempotency/retention.js';
import { TransactionService, type SubmitResult } from '../../src/gateway/service/transaction-service.js';
import { consumeAll, createTopics, startKafkaPool, testBootstrap, uniqueName, waitFor } from '../support/kafka.js';

const bootstrap = testBootstrap();
const kafka = { 'bootstrap.servers': bootstrap };
/** Short enough to wait out, long enough that a request and its replay fall inside it. */
const RETENTION_MS = 3_000;

const dataTopic = uniqueName('ret-data');
let pool: TransactionalProducerPool;
const services: TransactionService[] = [];

async function newService(idempotencyTopic: string, idempotencyRetentionMs?: number): Promise<TransactionService> {
  const service = new TransactionService({ pool, kafka, idempotencyTopic, idempotencyRetentionMs });
  services.push(service);
  await service.start();
  return service;
}

/** One record whose value names the request; the key's fingerprint is the body, as the HTTP layer makes it. */
function keyed(service: TransactionService, key: string, body: string): Promise<SubmitResult> {
  return service.submit({
    records: [{ topic: dataTopic, key: Buffer.from(key), value: Buffer.from(body) }],
    idempotency: { key, fingerprint: `sha256-of-${body}` },
  });
}

async function writesOf(body: string): Promise<number> {
  return (await consumeAll(bootstrap, dataTopic)).filter((r) => r.value?.toString() === body).length;
}

function capture(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, error() {}, warn: (_obj, msg) => warnings.push(msg ?? '') };
}

before(async () => {
  await createTopics(bootstrap, [{ topic: dataTopic, partitions: 1 }]);
  pool = await startKafkaPool(bootstrap, { size: 2, idPrefix: 'ret', instanceId: 'a' });
});

after(async () => {
  for (const s of services) await s.close({ timeoutMs: 10_000 });
  await pool?.close();
});

describe('idempotency key retention on a real broker', { timeout: 120_000 }, () => {
  it('a key inside the retention replays; past it, the same request runs again as new', async () => {
    const service = await newService(uniqueName('ret-idem'), RETENTION_MS);
    const first = await keyed(service, 'order-1', 'body-1');
    assert.equal(first.replayed, false);
    const replay = await keyed(service, 'order-1', 'body-1');
    assert.equal(replay.replayed, true, 'inside the retention');
    assert.deepEqual(replay.records, first.records);
    assert.equal(service.stats().idempotencyKeys, 1);

    // The real wait: the sweep frees the key once it is RETENTION_MS old.
    await waitFor(() => service.stats().idempotencyKeys === 0, { timeoutMs: 20_000, what: 'the sweep to free the expired key' });

    const other = await keyed(service, 'order-2', 'body-2');
    assert.equal((await keyed(service, 'order-2', 'body-2')).replayed, true, 'a key just committed replays');
    const again = await keyed(service, 'order-1', 'body-1');
    assert.equal(again.replayed, false, 'past the retention the request is new');
    assert.notDeepEqual(again.records, first.records);
    assert.equal((await keyed(service, 'order-1', 'body-1')).replayed, true, 'and its new outcome is answered in turn');
    assert.equal(await writesOf('body-1'), 2, 'written once per window');
    assert.equal(await writesOf('body-2'), 1);
    assert.equal(other.replayed, false);
  });

  it('an instance starting after the retention does not load the expired key, though the broker still holds it', async () => {
    const topic = uniqueName('ret-idem');
    const writer = await newService(topic, RETENTION_MS);
    const first = await keyed(writer, 'order-3', 'body-3');
    const committedAt = Date.now();
    // Waiting out the window is the point of this test; there is no condition to poll for.
    await sleep(Math.max(0, committedAt + RETENTION_MS - Date.now()));

    const longMemory = await newService(topic); // the default 24 h
    assert.equal(longMemory.stats().idempotencyKeys, 1, 'the record is still on the broker (its retention has a margin)');
    const restarted = await newService(topic, RETENTION_MS);
    assert.equal(restarted.stats().idempotencyKeys, 0, 'not loaded: expired');

    const replay = await keyed(longMemory, 'order-3', 'body-3');
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.records, first.records);
    assert.equal((await keyed(restarted, 'order-3', 'body-3')).replayed, false);
    assert.equal(await writesOf('body-3'), 2);
  });

  it('creates the topic with compaction plus time retention; warns about an existing topic without it', async () => {
    const created = uniqueName('ret-idem');
    const log = capture();
    const store = new IdempotencyStore({ ...createKafkaIdempotencyPorts(kafka), topic: created, retentionMs: RETENTION_MS, logger: log });
    await store.start();
    await store.close();
    const described = await runLauncher('topics', ['--describe', '--topic', created], { KAFKA_BOOTSTRAP: bootstrap });
    assert.match(described, /cleanup\.policy=compact,delete/);
    assert.match(described, new RegExp(`retention\\.ms=${RETENTION_MS + RETENTION_MARGIN_MS}\\b`));
    assert.match(described, /segment\.ms=\d+/);

    // Started again on the topic it created: nothing to warn about.
    const again = new IdempotencyStore({ ...createKafkaIdempotencyPorts(kafka), topic: created, retentionMs: RETENTION_MS, logger: log });
    await again.start();
    await again.close();
    assert.equal(log.warnings.length, 0, log.warnings.join('\n'));

    const legacy = uniqueName('ret-legacy');
    await createTopics(bootstrap, [{ topic: legacy, partitions: 3, config: { 'cleanup.policy': 'compact' } }]);
    const old = new IdempotencyStore({ ...createKafkaIdempotencyPorts(kafka), topic: legacy, retentionMs: RETENTION_MS, logger: log });
    await old.start();
    await old.close();
    assert.equal(log.warnings.length, 1, log.warnings.join('\n'));
    const warning = log.warnings[0]!;
    assert.match(warning, /no time-based retention/);
    assert.ok(
      warning.includes(
        `kafka-configs.sh --bootstrap-server ${bootstrap} --alter --entity-type topics --entity-name ${legacy} ` +
          `--add-config 'cleanup.policy=[compact,delete],retention.ms=${RETENTION_MS + RETENTION_MARGIN_MS},`,
      ),
      warning,
    );
    const unchanged = await runLauncher('topics', ['--describe', '--topic', legacy], { KAFKA_BOOTSTRAP: bootstrap });
    assert.doesNotMatch(unchanged, /cleanup\.policy=compact,delete/, 'not altered silently');
  });
});
