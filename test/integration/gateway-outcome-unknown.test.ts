/**
 * The one answer that leaves a client in doubt, provoked for real: the broker freezes (SIGSTOP)
 * at the moment the gateway commits, the commit times out past its retry deadline, and the client
 * gets 504 outcome-unknown. Once the broker is back, retrying with the same Idempotency-Key
 * learns the truth, and the records are in Kafka exactly once whichever way the commit went.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { resolveGatewayConfig } from '../../src/gateway/config.js';
import { startGateway } from '../../src/gateway/server.js';
import { ConfluentTransactionalProducer } from '../../src/kafka/confluent-producer.js';
import { LocalKafka } from '../../src/local-kafka/index.js';
import type { TransactionalProducer } from '../../src/pool/producer-port.js';
import { consumeAll, createTopics, uniqueName } from '../support/kafka.js';
import { KILLABLE_BROKER_PORT, KILLABLE_CONTROLLER_PORT, withPortLock } from '../support/ports.js';

it('504 when the broker freezes during the commit; a retry with the same key writes exactly once', { timeout: 300_000 }, () =>
  withPortLock('killable-broker', async () => {
    const stateDir = mkdtempSync(path.join(tmpdir(), 'txgate-504-'));
    const kafka = new LocalKafka({ port: KILLABLE_BROKER_PORT, controllerPort: KILLABLE_CONTROLLER_PORT, stateDir });
    const bootstrap = await kafka.start();
    const pid = await kafka.pid();
    assert.ok(pid, 'broker pid');
    let frozen = false;
    const thaw = () => {
      if (frozen) process.kill(pid, 'SIGCONT');
      frozen = false;
    };
    try {
      const topic = uniqueName('unknown');
      await createTopics(bootstrap, [{ topic, partitions: 1 }]);

      // The fault is real (the broker process stops answering); the hook only picks the moment.
      let freezeNextCommit = true;
      const producerFactory = (transactionalId: string): TransactionalProducer => {
        const real = new ConfluentTransactionalProducer(transactionalId, { 'bootstrap.servers': bootstrap });
        return Object.assign(Object.create(real) as TransactionalProducer, {
          commit: (timeoutMs: number) => {
            if (freezeNextCommit) {
              freezeNextCommit = false;
              process.kill(pid, 'SIGSTOP');
              frozen = true;
            }
            return real.commit(timeoutMs);
          },
        });
      };
      const config = resolveGatewayConfig({
        brokers: bootstrap,
        port: 0,
        poolSize: 1,
        commitTimeoutMs: 1_000,
        retryDeadlineMs: 3_000,
        logLevel: 'silent',
        instanceId: uniqueName('i'),
        transactionalIdPrefix: uniqueName('p'),
      });
      const gateway = await startGateway(config, { producerFactory });
      try {
        const body = JSON.stringify({ records: [{ topic, value: 'one' }, { topic, value: 'two' }] });
        const post = () =>
          fetch(`${gateway.url}/v1/transactions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': 'order-504' },
            body,
          });

        const first = await post();
        const problem = (await first.json()) as { type: string; code: string };
        assert.equal(first.status, 504, JSON.stringify(problem));
        assert.equal(problem.code, 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN');
        assert.match(problem.type, /transaction-outcome-unknown$/);

        thaw();
        // A client retries the same request until it gets a definitive answer.
        const answers: number[] = [];
        const deadline = Date.now() + 120_000;
        let final: Response | undefined;
        while (Date.now() < deadline) {
          const res = await post();
          answers.push(res.status);
          if (res.status === 200 || (res.status >= 400 && res.status < 500 && res.status !== 409)) {
            final = res;
            break;
          }
          await res.arrayBuffer();
          await new Promise((r) => setTimeout(r, Number(res.headers.get('retry-after') ?? 1) * 1000));
        }
        assert.equal(final?.status, 200, `answers: ${answers.join(', ')}`);
        const outcome = (await final.json()) as { status: string; records: Array<{ offset: string }> };
        assert.equal(outcome.status, 'committed');

        const records = await consumeAll(bootstrap, [topic], { isolation: 'read_committed', expected: 2, timeoutMs: 60_000 });
        assert.deepEqual(
          records.map((r) => r.value!.toString()),
          ['"one"', '"two"'],
          'written exactly once, whichever way the frozen commit went',
        );
        assert.deepEqual(
          outcome.records.map((r) => r.offset),
          records.map((r) => String(r.offset)),
          'the retry reports where the records are',
        );
        console.log(`# 504 then retries answered: ${answers.join(', ')}; replayed: ${final.headers.get('idempotent-replayed') ?? 'false'}`);
      } finally {
        thaw();
        await gateway.close();
      }
    } finally {
      thaw();
      await kafka.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  }),
);
