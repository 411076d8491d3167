/**
 * The client examples under examples/ (Go, Python, TypeScript) do what the README asks of a
 * client, run as a user would run them:
 *
 * - against a stub gateway that answers a scripted sequence, each retries 409, 503 (waiting at
 *   least its Retry-After), a dropped connection, 504, 500 and 429 with the same Idempotency-Key
 *   and body, uses a new key for the next transaction, stops at once on another 4xx, and gives
 *   up at its deadline;
 * - against a real gateway, every transaction it reports is in Kafka exactly once
 *   (read_committed) at the offsets it printed, and an unknown topic (404) stops it;
 * - mid-way through a run its gateway is killed with SIGKILL and started again with the same
 *   instance id on the same port, then later stopped with SIGTERM and started again: the example
 *   keeps retrying with the same keys, finishes, and the topic holds each transaction once.
 *
 * The Go example is checked (gofmt, go vet) and compiled here, with GOCACHE and GOPATH under
 * .cache/go and no downloads; Go comes from Debian's golang-go package, which scripts/setup.sh
 * installs. The TypeScript example is typechecked with its own tsconfig (the project's settings).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { consumeAll, createTopics, testBootstrap, uniqueName, waitFor } from '../support/kafka.js';
import { freePort, GatewayProcess } from '../support/gateway-process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXAMPLES = path.join(ROOT, 'examples');
type Lang = 'go' | 'python' | 'typescript';
const LANGS: Lang[] = ['go', 'python', 'typescript'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Transactions in a restart run: enough that it is still mid-way at both restarts. */
const RESTART_RUN_COUNT = 150;
/** Committed transactions before the SIGKILL, and again after the first restart before the SIGTERM. */
const PROGRESS_BEFORE_RESTART = 20;
/** Generous: a gateway start (or a restart's first transactions) on 2 cores busy with other test files. */
const READY_TIMEOUT_MS = 180_000;
const PROGRESS_TIMEOUT_MS = 180_000;

// ------------------------------------------------------------------ toolchains

function run(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { ...opts, maxBuffer: 16 << 20, timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

/** The Go toolchain's state stays inside the project, so it works as any user, HOME or not. */
const GO_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GOCACHE: path.join(ROOT, '.cache', 'go', 'cache'),
  GOPATH: path.join(ROOT, '.cache', 'go', 'path'),
  // no go env file, no module or toolchain downloads: the example uses the standard library only
  GOENV: 'off',
  GOPROXY: 'off',
  GOTOOLCHAIN: 'local',
  GOFLAGS: '',
};

let goBuild: Promise<string> | undefined;
/** Builds the Go example once (vet included) and resolves with the binary's path. */
function goBinary(): Promise<string> {
  goBuild ??= (async () => {
    try {
      await run('go', ['version'], { env: GO_ENV });
    } catch (err) {
      throw new Error(
        `cannot run \`go\` (${(err as Error).message.split('\n')[0]}): the Go example needs Go 1.19+, Debian's golang-go package. ` +
          '`bash scripts/setup.sh` installs it when run as root; or: apt-get install -y --no-install-recommends golang-go',
      );
    }
    const bin = path.join(mkdtempSync(path.join(tmpdir(), 'txgate-examples-go-')), 'send');
    const dir = path.join(EXAMPLES, 'go');
    try {
      const unformatted = (await run('gofmt', ['-l', '.'], { cwd: dir, env: GO_ENV })).stdout.trim();
      if (unformatted) throw new Error(`not gofmt-formatted: ${unformatted}`);
      await run('go', ['vet', './...'], { cwd: dir, env: GO_ENV });
      await run('go', ['build', '-o', bin, '.'], { cwd: dir, env: GO_ENV });
    } catch (err) {
      throw new Error(`the Go example does not build: ${(err as Error & { stderr?: string }).stderr ?? (err as Error).message}`);
    }
    return bin;
  })();
  return goBuild;
}

let pythonCheck: Promise<void> | undefined;
function python(): Promise<void> {
  pythonCheck ??= run('python3', ['--version']).then(
    () => undefined,
    (err: Error) => {
      throw new Error(`cannot run \`python3\` (${err.message.split('\n')[0]}): the Python example needs Python 3.8+ (scripts/setup.sh installs python3)`);
    },
  );
  return pythonCheck;
}

/** The command line that runs an example's CLI. */
async function commandFor(lang: Lang): Promise<[string, string[]]> {
  switch (lang) {
    case 'go':
      return [await goBinary(), []];
    case 'python':
      await python();
      return ['python3', [path.join(EXAMPLES, 'python', 'send.py')]];
    case 'typescript':
      return [process.execPath, ['--import', 'tsx', path.join(EXAMPLES, 'typescript', 'send.ts')]];
  }
}

// ------------------------------------------------------------------ running an example

interface Position {
  topic: string;
  partition: number;
  offset: string;
}

/** One stdout line: a committed transaction. */
interface Line {
  n: number;
  idempotencyKey: string;
  attempts: number;
  replayed: boolean;
  records: Position[];
}

const running = new Set<ChildProcess>();

class ExampleRun {
  readonly lines: Line[] = [];
  readonly stderr: string[] = [];
  /** stdout lines that are not JSON (a bug in the example). */
  readonly garbage: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  done = false;

  constructor(
    readonly lang: Lang,
    command: [string, string[]],
    args: string[],
    env: Record<string, string> = {},
  ) {
    // Only what the test gives: no TXGATE_* of the caller's environment reaches the example.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TXGATE_')));
    const child = spawn(command[0], [...command[1], ...args], {
      cwd: ROOT,
      env: {
        ...base,
        ...env,
        // the gateway is local: a proxy from the environment must not be used for it (urllib honours *_proxy)
        no_proxy: '127.0.0.1,localhost',
        NO_PROXY: '127.0.0.1,localhost',
        // no __pycache__ in the checkout
        PYTHONDONTWRITEBYTECODE: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as Line);
      } catch {
        this.garbage.push(l);
      }
    });
    readline.createInterface({ input: child.stderr! }).on('line', (l) => this.stderr.push(l));
    this.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        this.stderr.push(`spawn failed: ${err.message}`);
        running.delete(child);
        this.done = true;
        resolve({ code: null, signal: null });
      });
      child.once('close', (code, signal) => {
        running.delete(child);
        this.done = true;
        resolve({ code, signal });
      });
    });
  }

  /** For assertion messages. */
  tail(): string {
    return `\n--- ${this.lang} example stderr (last 30 lines):\n${this.stderr.slice(-30).join('\n')}` + (this.garbage.length ? `\n--- not JSON on stdout:\n${this.garbage.join('\n')}` : '');
  }
}

after(() => {
  for (const child of running) child.kill('SIGKILL');
});

// ------------------------------------------------------------------ a stub gateway

type Scripted = 'ok' | 'drop' | { status: number; code?: string; retryAfter?: string; text?: string; replayed?: boolean };

interface StubRequest {
  at: number;
  key: string | undefined;
  authorization: string | undefined;
  contentType: string | undefined;
  body: string;
  answered: Scripted;
}

/** An HTTP server answering POST /v1/transactions with `script(i)` for the i-th request (0-based). */
class StubGateway {
  readonly requests: StubRequest[] = [];
  private server: Server | undefined;
  private offset = 100;
  url = '';

  constructor(private readonly script: (i: number) => Scripted) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    if (typeof addr !== 'object' || !addr) throw new Error('no address');
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const answer = this.script(this.requests.length);
    const header = (name: string): string | undefined => (typeof req.headers[name] === 'string' ? (req.headers[name] as string) : undefined);
    this.requests.push({
      at: performance.now(),
      key: header('idempotency-key'),
      authorization: header('authorization'),
      contentType: header('content-type'),
      body,
      answered: answer,
    });
    if (answer === 'drop') {
      req.socket.destroy();
      return;
    }
    if (answer === 'ok' || answer.status === 200) {
      const records = (JSON.parse(body) as { records: Array<{ topic: string }> }).records;
      const positions = records.map((r, i) => ({ topic: r.topic, partition: i % 2, offset: String(this.offset++) }));
      res.writeHead(200, { 'content-type': 'application/json', ...(answer !== 'ok' && answer.replayed ? { 'idempotent-replayed': 'true' } : {}) });
      res.end(JSON.stringify({ status: 'committed', records: positions }));
      return;
    }
    const headers: Record<string, string> = { 'content-type': answer.code ? 'application/problem+json' : 'text/plain' };
    if (answer.retryAfter !== undefined) headers['retry-after'] = answer.retryAfter;
    res.writeHead(answer.status, headers);
    res.end(answer.code ? JSON.stringify({ type: '/problems/x', title: 'scripted', status: answer.status, code: answer.code, detail: `scripted ${answer.code}` }) : (answer.text ?? ''));
  }
}

async function withStub<T>(script: (i: number) => Scripted, fn: (stub: StubGateway) => Promise<T>): Promise<T> {
  const stub = new StubGateway(script);
  await stub.start();
  try {
    return await fn(stub);
  } finally {
    await stub.close();
  }
}

// ------------------------------------------------------------------ the retry policy, against a stub

describe('examples: the retry policy (stub gateway)', { concurrency: true }, () => {
  it('the TypeScript example typechecks (strict, the project tsconfig)', { timeout: 300_000 }, async () => {
    const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
    await run(tsc, ['--noEmit', '-p', path.join(EXAMPLES, 'typescript')], { cwd: ROOT }).catch((err: Error & { stdout?: string }) => {
      throw new Error(`tsc -p examples/typescript failed:\n${err.stdout || err.message}`);
    });
  });

  for (const lang of LANGS) {
    it(`${lang}: retries 409, 503 (after its Retry-After), a dropped connection, 504, 500 and 429 with the same key and body`, { timeout: 300_000 }, async () => {
      const script: Scripted[] = [
        { status: 409, code: 'TXGATE_IDEMPOTENCY_IN_FLIGHT' },
        { status: 503, code: 'TXGATE_NOT_READY', retryAfter: '1' },
        'drop',
        { status: 504, code: 'TXGATE_TRANSACTION_OUTCOME_UNKNOWN' },
        { status: 500, code: 'TXGATE_TRANSACTION_ABORTED' },
        { status: 429, text: 'slow down' },
        { status: 200, replayed: true },
      ];
      const token = 'example-test-token-0123456789';
      await withStub(
        (i) => script[i] ?? 'ok',
        async (stub) => {
          const ex = new ExampleRun(lang, await commandFor(lang), [stub.url, 'orders', '2'], { TXGATE_API_KEY: token });
          const { code } = await ex.exited;
          assert.equal(code, 0, `exit code${ex.tail()}`);
          const reqs = stub.requests;
          // Go's net/http re-sends a replayable request (it has an Idempotency-Key) by itself when a
          // kept-alive connection turns out dead; each such re-send also took the next scripted answer.
          assert.equal(reqs.length, script.length + 1, `requests seen: ${reqs.map((r) => JSON.stringify(r.answered)).join(', ')}`);
          const first = reqs.slice(0, script.length);
          const key0 = first[0]!.key;
          assert.match(key0 ?? '', UUID, 'the key is a UUID');
          for (const r of first) {
            assert.equal(r.key, key0, 'every attempt of a transaction carries the same key');
            assert.equal(r.body, first[0]!.body, 'every attempt of a transaction carries the same body');
          }
          const last = reqs[script.length]!;
          assert.match(last.key ?? '', UUID);
          assert.notEqual(last.key, key0, 'the next transaction has a new key');
          for (const r of reqs) {
            assert.equal(r.authorization, `Bearer ${token}`, 'TXGATE_API_KEY is sent as a bearer token');
            assert.match(r.contentType ?? '', /^application\/json/);
          }
          const sent = JSON.parse(first[0]!.body) as { records: Array<{ topic: string; key: string; value: { n: number; part: number; client: string } }> };
          assert.deepEqual(
            sent.records.map((r) => [r.topic, r.key, r.value.n, r.value.part, r.value.client]),
            [
              ['orders', 'tx-0', 0, 0, lang],
              ['orders', 'tx-0', 0, 1, lang],
            ],
          );
          // Retry-After: 1 on the 503 (the second request): the next attempt came no sooner.
          const waited = reqs[2]!.at - reqs[1]!.at;
          assert.ok(waited >= 990, `waited ${Math.round(waited)} ms after a 503 with Retry-After: 1`);
          assert.equal(ex.lines.length, 2, `two transactions printed${ex.tail()}`);
          assert.deepEqual(
            ex.lines.map((l) => [l.n, l.idempotencyKey, l.replayed, l.records.map((p) => p.offset)]),
            [
              [0, key0, true, ['100', '101']],
              [1, last.key, false, ['102', '103']],
            ],
          );
          assert.ok(ex.lines[0]!.attempts >= 2 && ex.lines[0]!.attempts <= script.length, `attempts: ${ex.lines[0]!.attempts}`);
          assert.equal(ex.stderr.filter((l) => l.includes('retrying in')).length, ex.lines[0]!.attempts - 1, `one log line per retry${ex.tail()}`);
        },
      );
    });

    it(`${lang}: stops at once on a 4xx other than 408, 409 and 429, and prints the problem`, { timeout: 300_000 }, async () => {
      await withStub(
        (i) => (i === 0 ? 'ok' : { status: 422, code: 'TXGATE_IDEMPOTENCY_MISMATCH' }),
        async (stub) => {
          const ex = new ExampleRun(lang, await commandFor(lang), [stub.url, 'orders', '5']);
          const { code } = await ex.exited;
          assert.equal(code, 1, `exit code${ex.tail()}`);
          assert.equal(stub.requests.length, 2, 'no retry of the refused transaction, and no further transaction');
          assert.equal(ex.lines.length, 1);
          assert.match(ex.stderr.join('\n'), /422 TXGATE_IDEMPOTENCY_MISMATCH/);
        },
      );
    });

    it(`${lang}: gives up at its deadline, without waiting past it`, { timeout: 300_000 }, async () => {
      await withStub(
        () => ({ status: 503, code: 'TXGATE_ACQUIRE_TIMEOUT', retryAfter: '1' }),
        async (stub) => {
          const giveUpMs = 2_500;
          const ex = new ExampleRun(lang, await commandFor(lang), [stub.url, 'orders', '1'], { TXGATE_GIVE_UP_MS: String(giveUpMs) });
          const { code } = await ex.exited;
          const gaveUpAt = performance.now();
          assert.equal(code, 2, `exit code${ex.tail()}`);
          const reqs = stub.requests;
          assert.ok(reqs.length >= 2, `${reqs.length} attempts`);
          assert.ok(reqs.every((r) => r.key === reqs[0]!.key), 'one key');
          for (let i = 1; i < reqs.length; i++) assert.ok(reqs[i]!.at - reqs[i - 1]!.at >= 990, 'Retry-After honoured');
          // it stopped as soon as the next pause would end past the deadline, not after sleeping it
          assert.ok(gaveUpAt - reqs.at(-1)!.at < 1_000, `exited ${Math.round(gaveUpAt - reqs.at(-1)!.at)} ms after the last answer`);
          assert.ok(reqs.at(-1)!.at - reqs[0]!.at <= giveUpMs, 'no attempt after the deadline');
          assert.match(ex.stderr.join('\n'), /gave up after \d+ attempts \(last: 503 TXGATE_ACQUIRE_TIMEOUT\)/);
          assert.equal(ex.lines.length, 0);
        },
      );
    });
  }
});

// ------------------------------------------------------------------ against a real gateway

/** Every transaction printed is in the topic exactly once, at the offsets printed, and nothing else is. */
async function assertExactlyOnce(bootstrap: string, ex: ExampleRun, topic: string, count: number): Promise<void> {
  assert.deepEqual(
    ex.lines.map((l) => l.n),
    Array.from({ length: count }, (_, n) => n),
    `one line per transaction, in order${ex.tail()}`,
  );
  assert.equal(new Set(ex.lines.map((l) => l.idempotencyKey)).size, count, 'a key per transaction');
  const records = await consumeAll(bootstrap, topic, { isolation: 'read_committed', expected: 2 * count, timeoutMs: 120_000 });
  const seen = new Map<string, number>();
  const at = new Map<string, { key: string; value: string }>();
  for (const r of records) {
    const v = JSON.parse(r.value!.toString()) as { n: number; part: number };
    seen.set(`${v.n}/${v.part}`, (seen.get(`${v.n}/${v.part}`) ?? 0) + 1);
    at.set(`${r.partition}/${r.offset}`, { key: r.key!.toString(), value: r.value!.toString() });
  }
  assert.deepEqual(
    [...seen].filter(([, k]) => k !== 1),
    [],
    'no record written twice',
  );
  assert.equal(records.length, 2 * count, `the topic holds exactly the ${count} transactions' records`);
  for (const l of ex.lines) {
    assert.equal(l.records.length, 2);
    l.records.forEach((p, part) => {
      assert.equal(p.topic, topic);
      const found = at.get(`${p.partition}/${p.offset}`);
      assert.ok(found, `transaction ${l.n} record ${part}: nothing at ${p.partition}/${p.offset}`);
      assert.equal(found.key, `tx-${l.n}`);
      assert.deepEqual(JSON.parse(found.value), { n: l.n, part, client: ex.lang });
    });
  }
}

describe('examples against a real gateway', { concurrency: true }, () => {
  for (const lang of LANGS) {
    // one after the other within a language (concurrency is inherited): the restart run kills this gateway
    describe(lang, { concurrency: 1 }, () => {
      const gateways: GatewayProcess[] = [];
      const instanceId = uniqueName(`examples-${lang}`);
      const idempotencyTopic = uniqueName(`examples-${lang}-idem`);
      let port = 0;
      const startGateway = async (): Promise<GatewayProcess> => {
        port ||= await freePort();
        const gw = new GatewayProcess({
          label: `${lang} example's gateway`,
          brokers: testBootstrap(),
          port,
          // the same instance id on every restart: the successor fences the dead one's open transactions
          instanceId,
          args: ['--pool-size', '2', '--idempotency-topic', idempotencyTopic],
        });
        gateways.push(gw);
        await gw.ready(READY_TIMEOUT_MS);
        return gw;
      };
      let gateway: Promise<GatewayProcess> | undefined;
      after(async () => {
        await Promise.all(gateways.map((gw) => gw.kill('SIGKILL')));
      });

      it('commits each transaction once, at the offsets it prints, and stops on an unknown topic', { timeout: 600_000 }, async () => {
        const bootstrap = testBootstrap();
        const topic = uniqueName(`examples-${lang}`);
        const [gw] = await Promise.all([(gateway ??= startGateway()), createTopics(bootstrap, [{ topic, partitions: 3 }])]);
        const command = await commandFor(lang);
        const count = 20;
        const ex = new ExampleRun(lang, command, [gw.url, topic, String(count)]);
        const { code } = await ex.exited;
        assert.equal(code, 0, `exit code${ex.tail()}`);
        await assertExactlyOnce(bootstrap, ex, topic, count);

        const missing = new ExampleRun(lang, command, [gw.url, uniqueName('examples-no-such-topic'), '3']);
        assert.equal((await missing.exited).code, 1, `exit code for an unknown topic${missing.tail()}`);
        assert.match(missing.stderr.join('\n'), /404 TXGATE_UNKNOWN_TOPIC/);
        assert.doesNotMatch(missing.stderr.join('\n'), /retrying in/, 'a 404 is not retried');
        assert.equal(missing.lines.length, 0);
      });

      it('keeps its keys through a kill -9 and a SIGTERM restart of the gateway mid-way: each transaction written once', { timeout: 600_000 }, async () => {
        const bootstrap = testBootstrap();
        const topic = uniqueName(`examples-${lang}-restart`);
        const [first] = await Promise.all([(gateway ??= startGateway()), createTopics(bootstrap, [{ topic, partitions: 3 }])]);
        const started = performance.now();
        const ex = new ExampleRun(lang, await commandFor(lang), [first.url, topic, String(RESTART_RUN_COUNT)]);
        const progress = async (atLeast: number, what: string): Promise<void> => {
          await waitFor(() => ex.lines.length >= atLeast || ex.done, { timeoutMs: PROGRESS_TIMEOUT_MS, what }).catch((err: Error) => {
            throw new Error(`${err.message}${ex.tail()}`);
          });
          assert.ok(!ex.done, `the example ended before the restart (${ex.lines.length} of ${RESTART_RUN_COUNT} committed)${ex.tail()}`);
        };

        // kill -9 mid-way: a request may be cut off with its transaction open; the successor
        // (same instance id) fences and aborts it, and the example's retry learns the outcome.
        await progress(PROGRESS_BEFORE_RESTART, `${PROGRESS_BEFORE_RESTART} transactions before the kill -9`);
        await first.kill('SIGKILL');
        const atKill = ex.lines.length;
        const second = await startGateway();
        await progress(atKill + PROGRESS_BEFORE_RESTART, 'progress after the restart');

        // graceful: requests in flight finish, new ones get 503 with Retry-After, then connections are refused
        await second.kill('SIGTERM');
        const atTerm = ex.lines.length;
        await startGateway();
        const { code } = await ex.exited;
        assert.equal(code, 0, `exit code${ex.tail()}`);
        await assertExactlyOnce(bootstrap, ex, topic, RESTART_RUN_COUNT);

        const retries = ex.stderr.filter((l) => l.includes('retrying in'));
        assert.ok(retries.length > 0, `the example retried through the restarts${ex.tail()}`);
        // "cut off": a request in flight when its gateway died (reset, EOF); "refused": sent while it was down
        const answers = new Map<string, number>();
        for (const l of retries) {
          let a = / attempt \d+: (connection error|\d+ ?[A-Z_]*)/.exec(l)?.[1] ?? 'other';
          if (a === 'connection error') a = /refused|ECONNREFUSED/i.test(l) ? 'refused' : 'cut off';
          answers.set(a, (answers.get(a) ?? 0) + 1);
        }
        console.log(
          `# examples: ${lang}: ${RESTART_RUN_COUNT} transactions through kill -9 (after ${atKill}) and SIGTERM (after ${atTerm}) in ` +
            `${Math.round((performance.now() - started) / 1000)} s; ${ex.lines.filter((l) => l.replayed).length} replayed; retries: ` +
            [...answers].map(([a, k]) => `${a} x${k}`).join(', '),
        );
      });
    });
  }
});
