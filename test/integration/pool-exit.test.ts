/**
 * close() leaves no handle open: a process that used the pool exits on its own, without
 * process.exit(), once the pool is closed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTopics, testBootstrap, uniqueName } from '../support/kafka.js';

const bootstrap = testBootstrap();
const entry = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

it('a process exits by itself after pool.close()', { timeout: 120_000 }, async () => {
  const topic = uniqueName('exit');
  await createTopics(bootstrap, [{ topic, partitions: 1 }]);
  const script = `
    const { TransactionalProducerPool, createConfluentProducerFactory } = await import(${JSON.stringify(entry)});
    const pool = new TransactionalProducerPool({
      producerFactory: createConfluentProducerFactory({ 'bootstrap.servers': ${JSON.stringify(bootstrap)} }),
      size: 2, transactionalIdPrefix: ${JSON.stringify(uniqueName('exit'))}, instanceId: 'child',
    });
    await pool.start();
    const { records } = await pool.run((tx) => tx.send({ topic: ${JSON.stringify(topic)}, value: Buffer.from('bye') }));
    await pool.close();
    console.log('closed', records.length);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '8' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, 60_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.notEqual(code, null, `the process did not exit within 60 s after close(): ${out}`);
  assert.equal(code, 0, out);
  assert.match(out, /closed 1/);
});
