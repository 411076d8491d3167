/** GET /openapi.json is a valid OpenAPI 3.1 document built from the schemas that validate requests. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { buildGateway, type GatewayService } from '../../src/gateway/http/app.js';
import { TopicCatalog } from '../../src/gateway/service/topic-catalog.js';
import { PROBLEMS } from '../../src/gateway/http/problems.js';
import { TransactionRequestSchema } from '../../src/gateway/http/schemas.js';

const service: GatewayService = {
  submit: async () => ({ records: [], replayed: false }),
  stats: () => ({ pendingRequests: 0, openBatches: 0, transactions: 0, requests: 0, batchedRequests: 0, idempotencyKeys: 0 }),
};
const topics = new TopicCatalog({ describe: async () => new Map(), ping: async () => {}, close: async () => {} });

for (const apiKeys of [[], [{ name: 'svc', token: 'a-long-enough-token-123', topics: ['*'] }]]) {
  test(`openapi.json validates as OpenAPI 3.1 (auth ${apiKeys.length ? 'on' : 'off'})`, async () => {
    const app = buildGateway({ service, topics, apiKeys });
    const res = await app.inject({ url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = res.json();
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    assert.equal(validator.version, '3.1');
    assert.equal(doc.openapi, '3.1.0');
    // The request schema in the document is the one Fastify validates with.
    assert.deepEqual(doc.components.schemas.TransactionRequest, JSON.parse(JSON.stringify(TransactionRequestSchema)));
    const post = doc.paths['/v1/transactions'].post;
    for (const status of ['200', '400', '401', '403', '404', '409', '413', '415', '422', '500', '503', '504']) {
      assert.ok(post.responses[status], `documents ${status}`);
    }
    assert.deepEqual(doc.components.schemas.Problem.properties.code.enum, Object.keys(PROBLEMS));
    assert.equal(Boolean(doc.components.securitySchemes), apiKeys.length > 0);
  });
}

test('the validator rejects a broken document (the check above can fail)', async () => {
  const result = await new Validator().validate({ openapi: '3.1.0', info: { title: 'x' }, paths: { '/x': { get: { responses: 'nope' } } } });
  assert.equal(result.valid, false);
});
