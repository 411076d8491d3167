/**
 * The HTTP services the gateway is compared with, each run as its own process by the harness:
 *
 *   seed     the seed's design: node:http, one transactional producer with a random UUID
 *            transactional.id per request (init, send, commit, close)
 *   shared   one transactional producer used by all requests at once
 *   ceiling  Fastify parsing and validating the gateway's request schema, answering 200 without
 *            Kafka: what HTTP alone costs on this machine
 *
 * Args: mode port bootstrap transactionalIdPrefix. Prints "listening" once it accepts requests.
 */
import http from 'node:http';
import Fastify from 'fastify';
import { TransactionRequestSchema, type TransactionRequest } from '../../src/gateway/http/schemas.js';
import type { OutgoingRecord } from '../../src/index.js';
import { ConfluentTransactionalProducer } from '../../src/kafka/confluent-producer.js';
import { errorKind, seedTransaction, sharedTransaction } from './work.js';

const [mode, portArg, bootstrap = '', prefix = 'bench'] = process.argv.slice(2);
const port = Number(portArg);

function toRecords(body: TransactionRequest): OutgoingRecord[] {
  return body.records.map((r) => ({
    topic: r.topic,
    key: r.key === undefined ? null : Buffer.from(r.key),
    value: r.valueBase64 === undefined ? null : Buffer.from(r.valueBase64, 'base64'),
  }));
}

async function kafkaServer(handle: (batch: OutgoingRecord[]) => Promise<void>): Promise<void> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let batch: OutgoingRecord[];
      try {
        batch = toRecords(JSON.parse(Buffer.concat(chunks).toString()) as TransactionRequest);
      } catch {
        res.writeHead(400).end();
        return;
      }
      handle(batch).then(
        () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"committed"}'),
        (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(errorKind(error)),
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
}

async function main(): Promise<void> {
  if (mode === 'seed') {
    await kafkaServer((batch) => seedTransaction(bootstrap, prefix, batch));
  } else if (mode === 'shared') {
    const producer = new ConfluentTransactionalProducer(`${prefix}-shared`, { 'bootstrap.servers': bootstrap });
    await producer.init(60_000);
    await kafkaServer((batch) => sharedTransaction(producer, batch));
  } else if (mode === 'ceiling') {
    const app = Fastify({ logger: false, bodyLimit: 1_048_576 });
    app.post('/v1/transactions', { schema: { body: TransactionRequestSchema } }, async () => ({ status: 'committed' }));
    await app.listen({ port, host: '127.0.0.1' });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  process.stdout.write('listening\n');
}

await main();
