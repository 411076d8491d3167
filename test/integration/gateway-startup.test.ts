/**
 * Start-up on the real broker (TXGATE_TEST_BOOTSTRAP): the gateway listens before it is ready,
 * creates its idempotency topic and reaches readiness; `txgate serve` logs its URL before it is
 * ready; and against a cluster that never answers it stays alive, says why it is not ready, and
 * gives up at --start-timeout-ms with an error naming the step, exiting non-zero.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RdKafka } from '@confluentinc/kafka-javascript';
import type { GatewayConfig } from '../../src/gateway/config.js';
import { startGateway } from '../../src/gateway/server.js';
import { freePort, GatewayProcess } from '../support/gateway-process.js';
import { createTopics, testBootstrap, uniqueName, waitFor } from '../support/kafka.js';
import { testGatewayConfig } from '../support/gateway-config.js';

const bootstrap = testBootstrap();
/** Start-up on a shared, busy 2-core machine: generous. */
const READY_TIMEOUT_MS = 180_000;

function config(idempotencyTopic: string): GatewayConfig {
  return testGatewayConfig({
    kafka: { 'bootstrap.servers': bootstrap },
    pool: { acquireTimeoutMs: 10_000, instanceId: uniqueName('startup'), transactionalIdPrefix: 'txgate-startup-test' },
    idempotencyTopic,
    shutdownTimeoutMs: 10_000,
    startTimeoutMs: READY_TIMEOUT_MS,
    logLevel: 'error',
  });
}

async function describeTopic(topic: string): Promise<RdKafka.TopicDescription> {
  const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': bootstrap, 'client.id': 'txgate-test-startup' });
  try {
    const [d] = await new Promise<RdKafka.TopicDescription[]>((resolve, reject) =>
      admin.describeTopics([topic], { timeout: 10_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    return d!;
  } finally {
    admin.disconnect();
  }
}

async function get(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  return { status: res.status, body: /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text };
}

describe('gateway start-up on a real broker', { timeout: 600_000 }, () => {
  it('listens at once, creates the idempotency topic, and turns ready; keyed requests then work', async () => {
    const idempotencyTopic = uniqueName('startup-idem');
    const orders = uniqueName('startup-orders');
    await createTopics(bootstrap, [{ topic: orders, partitions: 1 }]);
    const gw = await startGateway(config(idempotencyTopic), { waitUntilReady: false });
    try {
      assert.equal((await get(`${gw.url}/healthz`)).status, 200, 'alive while starting');
      const seen: number[] = [];
      await waitFor(
        async () => {
          const r = await get(`${gw.url}/readyz`);
          seen.push(r.status);
          if (r.status !== 200) {
            assert.equal(r.status, 503);
            assert.equal(r.body.code, 'TXGATE_NOT_READY');
            // Before ready it is start-up that is not done, never a failed pool or broker probe.
            assert.equal(r.body.checks.startup.state, 'starting', JSON.stringify(r.body));
          }
          return r.status === 200;
        },
        { timeoutMs: READY_TIMEOUT_MS, intervalMs: 100, what: 'the gateway to answer /readyz with 200' },
      );
      await gw.ready;
      assert.equal(gw.startup().state, 'ready');

      const topic = await describeTopic(idempotencyTopic);
      assert.equal(topic.error, undefined, `the gateway created ${idempotencyTopic}`);
      assert.equal(topic.partitions.length, 3);

      const send = () =>
        fetch(`${gw.url}/v1/transactions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': 'startup-1' },
          body: JSON.stringify({ records: [{ topic: orders, value: { n: 1 } }] }),
        });
      const first = await send();
      assert.equal(first.status, 200, await first.text());
      const again = await send();
      assert.equal(again.status, 200, await again.text());
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
    } finally {
      assert.equal(await gw.close(), true);
    }
  });

  it('txgate serve logs its URL while starting and "ready" once ready; SIGTERM then exits 0', async () => {
    const gw = new GatewayProcess({
      label: 'serve',
      brokers: bootstrap,
      port: await freePort(),
      instanceId: uniqueName('startup-serve'),
      args: ['--pool-size', '2', '--idempotency-topic', uniqueName('startup-serve-idem'), '--log-level', 'info'],
    });
    try {
      await gw.ready(READY_TIMEOUT_MS);
      const messages = gw.logs.map((line) => {
        try {
          return (JSON.parse(line) as { msg?: string }).msg ?? '';
        } catch {
          return '';
        }
      });
      const listening = messages.indexOf('txgate gateway listening; starting up (GET /readyz tells how far)');
      const ready = messages.indexOf('txgate gateway ready');
      assert.ok(listening >= 0 && ready > listening, `listening logged before ready:\n${gw.logs.join('\n')}`);
      assert.ok(messages.indexOf('created the idempotency topic') > listening, 'the topic was created after the listener came up');
      assert.deepEqual(await gw.kill('SIGTERM'), { code: 0, signal: null });
    } finally {
      if (gw.alive) await gw.kill('SIGKILL');
    }
  });

  it('with no broker answering: alive, /readyz says why, transactions get 503, then it gives up at --start-timeout-ms and exits 1', async () => {
    // A port nothing listens on: every connection is refused.
    const deadPort = await freePort();
    const gw = new GatewayProcess({
      label: 'serve without Kafka',
      brokers: `127.0.0.1:${deadPort}`,
      port: await freePort(),
      instanceId: uniqueName('startup-dead'),
      args: ['--pool-size', '1', '--start-timeout-ms', '5000'],
    });
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void gw.exited.then((e) => (exit = e));
    try {
      const notReady = await waitFor(
        async () => {
          if (exit) throw new Error(`exited before answering:\n${gw.logs.join('\n')}`);
          return get(`${gw.url}/readyz`).catch(() => undefined);
        },
        { timeoutMs: 60_000, intervalMs: 100, what: 'the listener to answer while starting' },
      );
      assert.equal(notReady.status, 503);
      assert.equal(notReady.body.code, 'TXGATE_NOT_READY');
      assert.match(notReady.body.checks.startup.step, /^starting the producer pool/);
      assert.match(notReady.body.detail, /starting up: starting the producer pool/);
      assert.equal((await get(`${gw.url}/healthz`)).status, 200);
      const post = await fetch(`${gw.url}/v1/transactions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ records: [{ topic: 'any', value: 1 }] }),
      });
      assert.equal(post.status, 503);
      assert.equal(((await post.json()) as { code: string }).code, 'TXGATE_NOT_READY');
      assert.ok(post.headers.get('retry-after'));

      // Each attempt to initialise a producer waits for its own timeout (30 s), so giving up
      // comes with the first attempt that ends after the deadline.
      assert.ok(gw.alive, 'still running after answering');
      const result = await waitFor(() => exit, { timeoutMs: 120_000, intervalMs: 200, what: 'the gateway to give up and exit by itself' });
      assert.deepEqual(result, { code: 1, signal: null }, gw.logs.join('\n'));
      const message = gw.logs.find((l) => l.startsWith('txgate serve: could not start:'));
      assert.ok(message, gw.logs.join('\n'));
      assert.match(message, /did not finish within 5000 ms \(--start-timeout-ms \/ TXGATE_START_TIMEOUT_MS\): starting the producer pool/);
      assert.match(message, /last error: /);
    } finally {
      if (gw.alive) await gw.kill('SIGKILL');
    }
  });
});
