/**
 * Hostile clients on raw sockets (node:net), against a gateway listening on a real port over the
 * stub service: malformed and truncated JSON, wrong types, deep nesting, numbers a double cannot
 * hold, duplicate and prototype keys, invalid UTF-8, control characters and CRLF in headers,
 * oversized headers, conflicting Content-Length and Transfer-Encoding, slow clients, clients that
 * disconnect mid-request, and bodies over the limit (the client must get to read its 413).
 * Every refusal must be a problem+json with its catalogue status, and nothing may reach the
 * transaction service that should not.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import net from 'node:net';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { GatewayDeps } from '../../src/gateway/http/app.js';
import { PROBLEMS, type ProblemCode } from '../../src/gateway/http/problems.js';
import { stubGateway } from '../support/gateway-stubs.js';

const TOKEN = `tok-${'0123456789abcdef'.repeat(2)}-raw`;

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Every complete HTTP/1.1 response in `raw` (bodies by Content-Length; 1xx have none). */
function parseResponses(raw: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const [statusLine, ...lines] = raw.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
    assert.ok(status > 0, `not a response: ${raw.subarray(at, at + 200).toString('latin1')}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = status < 200 ? 0 : Number(headers['content-length'] ?? 0);
    out.push({ status, headers, body: raw.subarray(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return out;
}

interface Gateway {
  app: ReturnType<typeof stubGateway>['app'];
  port: number;
  calls: ReturnType<typeof stubGateway>['calls'];
  logs: string[];
  /** Resolves once every connection the gateway accepted so far has closed. */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

async function gateway(over: Partial<GatewayDeps> = {}, setup?: (app: Gateway['app']) => void): Promise<Gateway> {
  const logs: string[] = [];
  const { app, calls } = stubGateway({ logger: { level: 'trace', stream: { write: (line: string) => void logs.push(line) } }, ...over });
  const sockets = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  setup?.(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    app,
    port: (app.server.address() as AddressInfo).port,
    calls,
    logs,
    allClosed: async () => {
      await Promise.all([...sockets].map((s) => (s.destroyed ? undefined : once(s, 'close'))));
    },
    close: () => app.close(),
  };
}

interface Exchange {
  responses: RawResponse[];
  /** Whether the server closed the connection (always true once exchange() resolves, unless the client reset it). */
  error?: string;
}

/**
 * Writes `data` on a new connection and collects what comes back until the server closes it.
 * halfClose: end the client's side after writing (the server then closes after answering).
 */
function exchange(port: number, data: string | Buffer, opts: { halfClose?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => resolve({ responses: parseResponses(Buffer.concat(chunks)), ...(error ? { error } : {}) }));
    if (opts.halfClose ?? true) socket.end(data);
    else socket.write(data);
  });
}

function request(method: string, path: string, body: string | Buffer = '', headers: Record<string, string | number> = {}): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const all = { host: 'gw', 'content-type': 'application/json', ...(bytes.length > 0 || method === 'POST' ? { 'content-length': bytes.length } : {}), ...headers };
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), bytes]);
}
const post = (body: string | Buffer, headers: Record<string, string | number> = {}) => request('POST', '/v1/transactions', body, headers);

interface Problem {
  code: ProblemCode;
  status: number;
  detail: string;
  errors?: Array<{ pointer: string; detail: string }>;
}

function assertProblem(res: RawResponse | undefined, status: number, code: ProblemCode, context = ''): Problem {
  assert.ok(res, `no response ${context}`);
  const what = `${context}: ${res.status} ${res.body.toString('utf8')}`;
  assert.equal(res.status, status, what);
  assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/, what);
  const doc = JSON.parse(res.body.toString('utf8')) as Problem;
  assert.equal(doc.code, code, what);
  assert.equal(doc.status, PROBLEMS[code].status, what);
  return doc;
}

/** One request, one answer, connection closed afterwards by the server (the client half-closed). */
async function single(gw: Gateway, data: string | Buffer): Promise<RawResponse> {
  const { responses } = await exchange(gw.port, data);
  assert.equal(responses.length, 1, `expected one response, got ${responses.length}`);
  return responses[0]!;
}

test('malformed, truncated and mistyped JSON: 400 problems, nothing reaches the service', async () => {
  const gw = await gateway();
  try {
    const invalidJson = ['{"records":[', '{"records":[{"topic":"orders","value":1}]', "{'records':[]}", '{"records":[{"topic":"orders","value":1}]}x', '', 'nul', '{"records":[{"topic":"orders","value":01}]}'];
    for (const body of invalidJson) assertProblem(await single(gw, post(body)), 400, 'TXGATE_INVALID_JSON', JSON.stringify(body));
    const wrongTypes: Array<[string, string]> = [
      ['{"records":"x"}', '/records'],
      ['{"records":[{"topic":7}]}', '/records/0/topic'],
      ['{"records":[{"topic":"orders","partition":"1"}]}', '/records/0/partition'],
      ['{"records":[{"topic":"orders","partition":1.5}]}', '/records/0/partition'],
      ['{"records":[{"topic":"orders","partition":-1}]}', '/records/0/partition'],
      ['{"records":[{"topic":"orders","headers":{"a":1}}]}', '/records/0/headers/a'],
      ['{"records":[{"topic":"orders","key":null}]}', '/records/0/key'],
      ['{"records":[{"topic":"orders","valueBase64":"!!"}]}', '/records/0/valueBase64'],
      ['{"records":[],"extra":1}', '/extra'],
      ['null', ''],
      ['[]', ''],
      ['"records"', ''],
    ];
    for (const [body, pointer] of wrongTypes) {
      const doc = assertProblem(await single(gw, post(body)), 400, 'TXGATE_INVALID_REQUEST', body);
      assert.ok(doc.errors?.some((e) => e.pointer === pointer), `${body}: no error at "${pointer}": ${JSON.stringify(doc.errors)}`);
    }
    // Truncated on the wire: fewer bytes than Content-Length, then the client half-closes.
    const full = post('{"records":[{"topic":"orders","value":1}]}');
    assertProblem(await single(gw, full.subarray(0, full.length - 10)), 400, 'TXGATE_INVALID_REQUEST', 'truncated body');
    // Content-Length shorter than the JSON: the tail is not taken for another request.
    const short = Buffer.concat([post('{"records":[{"topic":"orders"'), Buffer.from(',"value":1}]}')]);
    const { responses } = await exchange(gw.port, short);
    assert.ok(responses.length >= 1);
    for (const res of responses) assert.equal(res.status, 400);
    assert.equal(gw.calls.length, 0);
  } finally {
    await gw.close();
  }
});

test('deep nesting anywhere is a 400, never a stack overflow (numbers in it included)', async () => {
  const gw = await gateway();
  try {
    const depth = 100_000;
    const arrays = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const cases: Array<[string, ProblemCode]> = [
      [arrays, 'TXGATE_INVALID_REQUEST'],
      [`{"records":${arrays}}`, 'TXGATE_INVALID_REQUEST'],
      [`{"records":[{"topic":"orders","headers":{"h":${arrays}}}]}`, 'TXGATE_INVALID_REQUEST'],
      [`{"records":[{"topic":"orders","nope":${arrays}}]}`, 'TXGATE_INVALID_REQUEST'],
      // A number that needs the exactness check, deep enough to overflow that check's stack.
      [`{"records":[{"topic":"orders","value":${'['.repeat(depth)}12345678901234567890${']'.repeat(depth)}}]}`, 'TXGATE_VALUE_TOO_DEEP'],
      [`{"records":[{"topic":"orders","value":${'{"a":'.repeat(1500)}1e400${'}'.repeat(1500)}}]}`, 'TXGATE_VALUE_TOO_DEEP'],
    ];
    for (const [body, code] of cases) assertProblem(await single(gw, post(body)), 400, code, body.slice(0, 60));
    // Within the depth limit, an inexact number deep inside is found and pointed at.
    const doc = assertProblem(await single(gw, post(`{"records":[{"topic":"orders","value":${'['.repeat(900)}1e400${']'.repeat(900)}}]}`)), 400, 'TXGATE_INVALID_REQUEST');
    assert.equal(doc.errors?.[0]?.pointer, `/records/0/value${'/0'.repeat(900)}`);
    assert.equal(gw.calls.length, 0);
  } finally {
    await gw.close();
  }
});

test('numbers a double cannot hold are refused with a pointer; the others are written as sent', async () => {
  const gw = await gateway();
  try {
    const refused: Array<[string, string]> = [
      ['{"records":[{"topic":"orders","value":1e400}]}', '/records/0/value'],
      ['{"records":[{"topic":"orders","value":-1e400}]}', '/records/0/value'],
      ['{"records":[{"topic":"orders","value":1e-400}]}', '/records/0/value'],
      ['{"records":[{"topic":"orders","value":{"id":12345678901234567890}}]}', '/records/0/value/id'],
      ['{"records":[{"topic":"orders","value":[1,9007199254740993]}]}', '/records/0/value/1'],
      ['{"records":[{"topic":"orders","value":{"a/b~":0.1000000000000000000000001}}]}', '/records/0/value/a~1b~0'],
      [`{"records":[{"topic":"orders","value":${'9'.repeat(5000)}}]}`, '/records/0/value'],
      ['{"records":[{"topic":"orders","partition":1e400}]}', '/records/0/partition'],
      ['{"records":[{"topic":"orders","partition":2.0000000000000001}]}', '/records/0/partition'],
    ];
    for (const [body, pointer] of refused) {
      const doc = assertProblem(await single(gw, post(body)), 400, 'TXGATE_INVALID_REQUEST', body.slice(0, 80));
      assert.equal(doc.errors?.[0]?.pointer, pointer, body.slice(0, 80));
      assert.match(doc.errors[0]!.detail, /no exact double-precision form/);
    }
    assert.equal(gw.calls.length, 0);
    const exact: Array<[string, string]> = [
      ['9007199254740991', '9007199254740991'],
      ['-9007199254740991', '-9007199254740991'],
      ['0.1', '0.1'],
      ['1e300', '1e+300'],
      ['1.5E-7', '1.5e-7'],
      ['-0', '0'],
      ['5e-324', '5e-324'],
      ['1.7976931348623157e308', '1.7976931348623157e+308'],
      ['123456789012345680000', '123456789012345680000'],
      ['100.000', '100'],
      ['0.30000000000000004', '0.30000000000000004'],
    ];
    for (const [literal, written] of exact) {
      const res = await single(gw, post(`{"records":[{"topic":"orders","value":${literal}}]}`));
      assert.equal(res.status, 200, `${literal}: ${res.body.toString()}`);
      assert.equal(gw.calls.at(-1)!.records[0]!.value!.toString(), written, literal);
    }
  } finally {
    await gw.close();
  }
});

test('duplicate keys: the last one counts, for the schema and the topic allowlist alike', async () => {
  const gw = await gateway({ apiKeys: [{ name: 'svc', token: TOKEN, topics: ['orders'] }] });
  const auth = { authorization: `Bearer ${TOKEN}` };
  try {
    const forbidden = assertProblem(await single(gw, post('{"records":[{"topic":"orders","topic":"audit","value":1}]}', auth)), 403, 'TXGATE_TOPIC_FORBIDDEN');
    assert.equal(forbidden.errors?.[0]?.pointer, '/records/0/topic');
    assert.match(forbidden.detail, /"audit"/);
    assert.equal(gw.calls.length, 0);

    assert.equal((await single(gw, post('{"records":[{"topic":"audit","topic":"orders","value":1}]}', auth))).status, 200);
    assert.equal(gw.calls.at(-1)!.records[0]!.topic, 'orders');
    assert.equal((await single(gw, post('{"records":[{"topic":"audit"}],"records":[{"topic":"orders","value":2}]}', auth))).status, 200);
    assert.deepEqual(gw.calls.at(-1)!.records.map((r) => [r.topic, r.value?.toString()]), [['orders', '2']]);
    assert.equal((await single(gw, post('{"records":[{"topic":"orders","value":1,"value":{"x":3}}]}', auth))).status, 200);
    assert.equal(gw.calls.at(-1)!.records[0]!.value!.toString(), '{"x":3}');
    assert.equal(gw.calls.length, 3);
  } finally {
    await gw.close();
  }
});

test('"__proto__" and "constructor.prototype" keys are refused wherever they are; nothing is polluted', async () => {
  const gw = await gateway();
  try {
    const poisoned = [
      '{"__proto__":{"polluted":1},"records":[{"topic":"orders","value":1}]}',
      '{"records":[{"topic":"orders","value":1,"__proto__":{"polluted":1}}]}',
      '{"records":[{"topic":"orders","value":{"a":[{"b":{"__proto__":{"polluted":1}}}]}}]}',
      '{"records":[{"topic":"orders","headers":{"__proto__":"x"}}]}',
      '{"records":[{"topic":"orders","value":{"\\u005f\\u005fproto__":{"polluted":1}}}]}',
      '{"records":[{"topic":"orders","value":{"constructor":{"prototype":{"polluted":1}}}}]}',
      '{"constructor":{"prototype":{"polluted":1}},"records":[{"topic":"orders"}]}',
    ];
    for (const body of poisoned) assertProblem(await single(gw, post(body)), 400, 'TXGATE_INVALID_JSON', body);
    assert.equal(gw.calls.length, 0);
    // The same names as plain data are fine.
    const res = await single(gw, post('{"records":[{"topic":"orders","value":{"constructor":1,"prototype":2,"toString":3},"headers":{"constructor":"c","hasOwnProperty":"h"}}]}'));
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(gw.calls[0]!.records[0]!.value!.toString(), '{"constructor":1,"prototype":2,"toString":3}');
    assert.deepEqual(gw.calls[0]!.records[0]!.headers, { constructor: 'c', hasOwnProperty: 'h' });
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  } finally {
    await gw.close();
  }
});

test('invalid UTF-8 is refused, not rewritten as U+FFFD; so are unpaired surrogates in keys and headers', async () => {
  const gw = await gateway();
  try {
    const withBytes = (bytes: number[]) => Buffer.concat([Buffer.from('{"records":[{"topic":"orders","key":"a'), Buffer.from(bytes), Buffer.from('"}]}')]);
    const invalid = [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]];
    for (const bytes of invalid) assertProblem(await single(gw, post(withBytes(bytes))), 400, 'TXGATE_INVALID_JSON', bytes.join(','));
    const unpaired: Array<[string, string]> = [
      ['{"records":[{"topic":"orders","key":"\\ud800"}]}', '/records/0/key'],
      ['{"records":[{"topic":"orders","key":"x\\udc00y"}]}', '/records/0/key'],
      ['{"records":[{"topic":"orders","headers":{"\\udc00x":"v"}}]}', '/records/0/headers/\udc00x'],
      ['{"records":[{"topic":"orders"},{"topic":"orders","headers":{"h":"\\ud83d"}}]}', '/records/1/headers/h'],
    ];
    for (const [body, pointer] of unpaired) {
      const doc = assertProblem(await single(gw, post(body)), 400, 'TXGATE_INVALID_REQUEST', body);
      assert.equal(doc.errors?.[0]?.pointer, pointer, body);
    }
    assert.equal(gw.calls.length, 0);
    // A surrogate pair is one character; in a value an unpaired one stays escaped in the JSON text.
    assert.equal((await single(gw, post('{"records":[{"topic":"orders","key":"\\ud83d\\ude00","value":"\\ud800"}]}'))).status, 200);
    assert.deepEqual(gw.calls[0]!.records[0]!.key, Buffer.from([0xf0, 0x9f, 0x98, 0x80]));
    assert.equal(gw.calls[0]!.records[0]!.value!.toString(), '"\\ud800"');
    assert.equal((await single(gw, post(Buffer.from('{"records":[{"topic":"orders","key":"zoë 😀"}]}')))).status, 200);
    assert.equal(gw.calls[1]!.records[0]!.key!.toString(), 'zoë 😀');
  } finally {
    await gw.close();
  }
});

test('control characters and CRLF in headers, malformed request lines: a 400 problem, then the server closes', async () => {
  const gw = await gateway({ apiKeys: [{ name: 'svc', token: TOKEN, topics: ['orders'] }] });
  try {
    const get = (extra: string) => `GET /healthz HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${TOKEN}\r\n${extra}\r\n`;
    const malformed = [
      get('X-A: a\rb\r\n'),
      get('X-A: a\x00b\r\n'),
      get('X-A: a\x01b\r\n'),
      get('X-A: a\x7fb\r\n'),
      get('X-A: a\r\n b\r\n'),
      get('X A: b\r\n'),
      get('X-A\r\n'),
      get('X-A : b\r\n'),
      'GET /healthz HTTP/1.1\nHost: gw\n\n',
      'GET /a b HTTP/1.1\r\nHost: gw\r\n\r\n',
      'GET /\x01 HTTP/1.1\r\nHost: gw\r\n\r\n',
      'BREW /pot HTTP/1.1\r\nHost: gw\r\n\r\n',
      '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
    ];
    for (const data of malformed) {
      // Not half-closed: the server must end the connection by itself.
      const { responses } = await exchange(gw.port, Buffer.from(data, 'latin1'), { halfClose: false });
      assert.equal(responses.length, 1, JSON.stringify(data));
      assertProblem(responses[0], 400, 'TXGATE_INVALID_REQUEST', JSON.stringify(data));
      assert.equal(responses[0]!.headers['connection'], 'close');
    }
    // CONNECT (a proxy tunnel) is answered too, not dropped.
    const connect = await exchange(gw.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', { halfClose: false });
    assert.equal(connect.responses.length, 1);
    assertProblem(connect.responses[0], 400, 'TXGATE_INVALID_REQUEST', 'CONNECT');
    // A URL with an invalid %-escape is refused by the router itself.
    assertProblem(await single(gw, 'GET /v1/%zz HTTP/1.1\r\nHost: gw\r\n\r\n'), 400, 'TXGATE_INVALID_REQUEST', 'bad %-escape');
    // Host: none, or several, on HTTP/1.1 (HTTP/1.0 needs none).
    assertProblem(await single(gw, 'GET /healthz HTTP/1.1\r\n\r\n'), 400, 'TXGATE_INVALID_REQUEST', 'no Host');
    assertProblem(await single(gw, 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), 400, 'TXGATE_INVALID_REQUEST', 'two Hosts');
    assert.equal((await single(gw, 'GET /healthz HTTP/1.0\r\n\r\n')).status, 200);
    // The parser's errors carry the raw bytes received; none of them may reach the logs.
    assert.ok(gw.logs.length > 0);
    assert.ok(gw.logs.every((line) => !line.includes(TOKEN)), 'the token in the logs');
    assert.equal(gw.calls.length, 0);
  } finally {
    await gw.close();
  }
});

test('headers over 16 KiB: a 431 problem', async () => {
  const gw = await gateway({ apiKeys: [{ name: 'svc', token: TOKEN, topics: ['orders'] }] });
  try {
    const cases = [
      `GET /healthz HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${TOKEN}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      `GET /healthz HTTP/1.1\r\nHost: gw\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(40)}\r\n`).join('')}\r\n`,
      `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: gw\r\n\r\n`,
      post('{"records":[{"topic":"orders","value":1}]}', { authorization: `Bearer ${TOKEN}${'x'.repeat(17_000)}` }),
    ];
    for (const data of cases) {
      const { responses } = await exchange(gw.port, data, { halfClose: false });
      assert.equal(responses.length, 1);
      assertProblem(responses[0], 431, 'TXGATE_HEADERS_TOO_LARGE');
    }
    assert.ok(gw.logs.every((line) => !line.includes(TOKEN)), 'the token in the logs');
    assert.equal(gw.calls.length, 0);
  } finally {
    await gw.close();
  }
});

test('conflicting or malformed Content-Length and Transfer-Encoding: a 400, and nothing smuggled is served', async () => {
  const gw = await gateway();
  try {
    const smuggled = post('{"records":[{"topic":"orders","value":"smuggled"}]}').toString('latin1');
    const head = 'POST /v1/transactions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n';
    const cases = [
      `${head}Content-Length: ${5 + smuggled.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      `${head}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${smuggled}`,
      `${head}Content-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      `${head}Content-Length: 2, ${smuggled.length}\r\n\r\n${smuggled}`,
      `${head}Content-Length: +${smuggled.length}\r\n\r\n${smuggled}`,
      `${head}Content-Length: -1\r\n\r\n${smuggled}`,
      `${head}Content-Length: 99999999999999999999999\r\n\r\n${smuggled}`,
      `${head}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`,
      `${head}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      `${head}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
      `${head}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      `${head}Transfer-Encoding: chunked\r\n\r\n2;${'x'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n${smuggled}`,
      `${head}Transfer-Encoding: chunked\r\n\r\nzz\r\n${smuggled}`,
    ];
    for (const data of cases) {
      const { responses } = await exchange(gw.port, Buffer.from(data, 'latin1'), { halfClose: false });
      assert.equal(responses.length, 1, data.slice(0, 200));
      assertProblem(responses[0], 400, 'TXGATE_INVALID_REQUEST', data.slice(0, 200));
    }
    assert.equal(gw.calls.length, 0, 'a smuggled request was served');
  } finally {
    await gw.close();
  }
});

test('slow clients: headers or a body trickled byte by byte, or nothing at all, are cut off with a 408', async () => {
  const gw = await gateway({ limits: { headersTimeoutMs: 200, requestTimeoutMs: 400 } });
  /** Sends `head` at once, then one more byte per tick for as long as the server keeps the connection. */
  const trickle = (head: string | Buffer) =>
    new Promise<RawResponse[]>((resolve) => {
      const socket = net.connect(gw.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.write(head);
      const pace = setInterval(() => socket.writable && socket.write('a'), 10);
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', () => {});
      socket.on('close', () => {
        clearInterval(pace);
        resolve(parseResponses(Buffer.concat(chunks)));
      });
    });
  try {
    assertProblem((await trickle('GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: '))[0], 408, 'TXGATE_REQUEST_TIMEOUT', 'slow headers');
    const silent = await exchange(gw.port, '', { halfClose: false });
    assert.equal(silent.responses.length, 1);
    assertProblem(silent.responses[0], 408, 'TXGATE_REQUEST_TIMEOUT', 'silent client');
    assertProblem((await trickle(post('{"records":[{"topic":"orders","value":"', { 'content-length': 1_000_000 })))[0], 408, 'TXGATE_REQUEST_TIMEOUT', 'slow body');
    assert.equal(gw.calls.length, 0);
  } finally {
    await gw.close();
  }
});

test('the timeouts a listening gateway applies by default', async () => {
  const { app } = stubGateway();
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    assert.equal(app.server.headersTimeout, 10_000);
    assert.equal(app.server.requestTimeout, 30_000);
    assert.equal(app.server.keepAliveTimeout, 72_000);
    assert.ok((app.server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval <= 1_000);
  } finally {
    await app.close();
  }
});

test('clients that disconnect mid-request: nothing is submitted, nothing logged as an error, the gateway serves on', async () => {
  // The service holds every transaction until its client goes away.
  let submitted = 0;
  const held = new Set<Promise<unknown>>();
  let onSubmit = () => {};
  const firstSubmit = new Promise<void>((resolve) => (onSubmit = resolve));
  const gw = await gateway({
    service: {
      async submit(req) {
        submitted++;
        const aborted = once(req.signal!, 'abort');
        held.add(aborted);
        onSubmit();
        await aborted;
        throw Object.assign(new Error('aborted'), { code: 'TXGATE_ACQUIRE_ABORTED' });
      },
      stats: () => ({ pendingRequests: 0, openBatches: 0, transactions: 0, requests: 0, batchedRequests: 0, idempotencyKeys: 0 }),
    },
  });
  const cut = (data: Buffer | string, how: 'destroy' | 'reset', when: 'written' | 'submitted' = 'written') =>
    new Promise<void>((resolve) => {
      const socket = net.connect(gw.port, '127.0.0.1', () => {
        socket.write(data, async () => {
          if (when === 'submitted') await firstSubmit;
          if (how === 'reset') socket.resetAndDestroy();
          else socket.destroy();
        });
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    });
  try {
    const full = post('{"records":[{"topic":"orders","value":"x"}]}');
    await cut('POST /v1/transactions HTTP/1.1\r\nHo', 'destroy');
    await cut(full.subarray(0, full.length - 5), 'destroy');
    await cut(full.subarray(0, full.length - 5), 'reset');
    await cut(Buffer.concat([post('x'.repeat(10), { 'content-length': 5_000_000 }), Buffer.alloc(100_000, 0x20)]), 'reset');
    assert.equal(submitted, 0);
    await cut(full, 'destroy', 'submitted');
    await Promise.all(held);
    await gw.allClosed();
    assert.equal(submitted, 1);
    const errors = gw.logs.filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    assert.deepEqual(errors, []);
    assert.equal((await single(gw, request('GET', '/healthz'))).status, 200);
  } finally {
    await gw.close();
  }
});

/**
 * Posts `attempts` bodies of `bytes` with Node's http client from a worker thread (its own event
 * loop, like a separate client process: in the server's loop the race below does not show) and
 * reports what each attempt saw.
 */
async function postFromWorker(port: number, opts: { attempts: number; bytes: number; chunked: boolean; close: boolean; type: string }): Promise<string[]> {
  const source = `
    const http = require('node:http');
    const { parentPort, workerData: { port, attempts, bytes, chunked, close, type } } = require('node:worker_threads');
    const body = Buffer.alloc(bytes, 0x20);
    const once = () => new Promise((resolve) => {
      const headers = { 'content-type': type };
      if (!chunked) headers['content-length'] = body.length;
      if (close) headers['connection'] = 'close';
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/transactions', headers, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve(JSON.stringify({ status: res.statusCode, type: res.headers['content-type'], connection: res.headers.connection, body: Buffer.concat(chunks).toString() })));
        res.on('error', (e) => resolve('response error ' + e.code));
      });
      req.on('error', (e) => resolve('request error ' + e.code));
      if (chunked) { for (let at = 0; at < body.length; at += 65536) req.write(body.subarray(at, at + 65536)); req.end(); }
      else req.end(body);
    });
    (async () => { const seen = []; for (let i = 0; i < attempts; i++) seen.push(await once()); parentPort.postMessage(seen); })();
  `;
  const worker = new Worker(source, { eval: true, workerData: { port, ...opts } });
  try {
    const [seen] = (await once(worker, 'message')) as [string[]];
    return seen;
  } finally {
    await worker.terminate();
  }
}

test('a body over the limit: the client reads its 413 (the connection lingers instead of being reset)', async () => {
  // The 415 variant needs a body within the limit that is still arriving when it is answered.
  const gw = await gateway({ limits: { maxBodyBytes: 8 * 1024 * 1024 } });
  const MB = 1024 * 1024;
  try {
    // 413 by Content-Length, 413 once a chunked body is past the limit, and a 415 (decided before
    // reading the body) to a client that asked for "Connection: close" itself.
    const variants = [
      { chunked: false, close: false, bytes: 12 * MB, type: 'application/json', status: 413, code: 'TXGATE_BODY_TOO_LARGE' },
      { chunked: true, close: false, bytes: 12 * MB, type: 'application/json', status: 413, code: 'TXGATE_BODY_TOO_LARGE' },
      { chunked: false, close: true, bytes: 6 * MB, type: 'text/plain', status: 415, code: 'TXGATE_UNSUPPORTED_MEDIA_TYPE' },
    ];
    for (const { status, code, ...variant } of variants) {
      const seen = await postFromWorker(gw.port, { attempts: 50, ...variant });
      const failed = seen.filter((s) => !s.startsWith('{'));
      assert.deepEqual(failed, [], `${failed.length} of 50 posts (${JSON.stringify(variant)}) saw no answer`);
      for (const s of seen) {
        const res = JSON.parse(s) as { status: number; type: string; connection: string; body: string };
        assert.equal(res.status, status);
        assert.match(res.type, /^application\/problem\+json/);
        assert.equal(res.connection, 'close');
        assert.equal((JSON.parse(res.body) as { code: string }).code, code);
      }
    }
    assert.equal(gw.calls.length, 0);
  } finally {
    await gw.close();
  }
});

test('lingering is bounded, and a request pipelined behind a closing answer is not served', async () => {
  const gw = await gateway({ limits: { maxBodyBytes: 1024, lingerMs: 100 } });
  try {
    // Declares 1 MB, sends 10 KB, then neither sends more nor closes (even once the server has
    // half-closed): it reads its 413, and the server lets go of the connection after lingerMs.
    const stalled = net.connect({ port: gw.port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    stalled.on('data', (c: Buffer) => chunks.push(c));
    stalled.write(Buffer.concat([post('', { 'content-length': 1_000_000 }), Buffer.alloc(10_000, 0x20)]));
    await once(stalled, 'end');
    assertProblem(parseResponses(Buffer.concat(chunks))[0], 413, 'TXGATE_BODY_TOO_LARGE', 'stalled');
    await gw.allClosed();
    stalled.destroy();
    // A body over the limit with a valid request pipelined behind it: only the 413.
    const pipelined = Buffer.concat([post(Buffer.alloc(2000, 0x20)), post('{"records":[{"topic":"orders","value":1}]}')]);
    const { responses } = await exchange(gw.port, pipelined, { halfClose: false });
    assert.equal(responses.length, 1);
    assertProblem(responses[0], 413, 'TXGATE_BODY_TOO_LARGE', 'pipelined');
    assert.equal(gw.calls.length, 0);
  } finally {
    await gw.close();
  }
});

test('Expect: 100-continue gets its 100 then the answer; an unknown expectation is ignored', async () => {
  const gw = await gateway();
  try {
    const body = '{"records":[{"topic":"orders","value":1}]}';
    const socket = net.connect(gw.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // The body goes once the 100 is in, and not before.
      if (socket.writable && Buffer.concat(chunks).toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n')) socket.end(body);
    });
    socket.write(post('', { 'content-length': Buffer.byteLength(body), expect: '100-continue' }));
    await once(socket, 'close');
    const [cont, answer] = parseResponses(Buffer.concat(chunks));
    assert.equal(cont?.status, 100);
    assert.equal(answer?.status, 200);
    assert.equal((await single(gw, post(body, { expect: 'teapot' }))).status, 200);
    assert.equal(gw.calls.length, 2);
  } finally {
    await gw.close();
  }
});

test('pipelined requests are served one after the other, and none behind an answer that closes the connection', async () => {
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const submitted: string[] = [];
  const gw = await gateway(
    {
      service: {
        async submit(req) {
          submitted.push(req.records[0]!.topic);
          // The first request is answered 503 shutting-down, which closes the connection.
          await held;
          throw Object.assign(new Error('the pool is closed'), { code: 'TXGATE_POOL_CLOSED' });
        },
        stats: () => ({ pendingRequests: 0, openBatches: 0, transactions: 0, requests: 0, batchedRequests: 0, idempotencyKeys: 0 }),
      },
    },
    (app) => {
      // Runs after the gateway's own onRequest: the second request gets here only if it was let
      // through while the first one was still being handled; then the first one may go on.
      app.addHook('onRequest', async (request) => {
        if (request.url.endsWith('?second')) release();
      });
      // Otherwise the first one goes on once everything the second one could do without waiting
      // for I/O has been done: the verdict below does not depend on when.
      let parsed = 0;
      app.server.on('request', () => ++parsed === 2 && setImmediate(release));
    },
  );
  try {
    const second = request('POST', '/v1/transactions?second', '{"records":[{"topic":"audit","value":2}]}');
    const { responses } = await exchange(gw.port, Buffer.concat([post('{"records":[{"topic":"orders","value":1}]}'), second]), { halfClose: false });
    assert.equal(responses.length, 1);
    assertProblem(responses[0], 503, 'TXGATE_SHUTTING_DOWN');
    assert.equal(responses[0]!.headers['connection'], 'close');
    await gw.allClosed();
    assert.deepEqual(submitted, ['orders']);
  } finally {
    await gw.close();
  }
});
