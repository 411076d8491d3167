/**
 * The package runs as JavaScript: `npm run build` (also npm's prepare step) compiles src/ to dist/
 * with declarations and a stamp of the src/ it came from (scripts/build.cjs); plain node imports the
 * library, and bin/txgate.cjs runs the compiled CLI, without tsx (a development dependency). A dist/
 * that no longer matches src/ is never run silently: bin/txgate.cjs says so and runs src/ through
 * tsx, and `scripts/build.cjs --if-stale` (setup.sh, test.sh) recompiles it.
 *
 * All of it happens in a scratch copy of the project whose node_modules links every package of
 * this checkout's but tsx, as an install without development dependencies has them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const scratch = mkdtempSync(path.join(tmpdir(), 'txgate-build-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TXGATE_') && k !== 'NODE_OPTIONS'));
  return spawnSync(process.execPath, args, { cwd: scratch, env: { ...clean, ...env }, encoding: 'utf8', timeout: 120_000 });
}
const build = (...args: string[]) => run(['scripts/build.cjs', ...args]);
const txgate = (args: string[], env: Record<string, string> = {}) => run(['bin/txgate.cjs', ...args], env);
const stamp = () => readFileSync(path.join(scratch, 'dist', '.txgate-build'), 'utf8');

before(() => {
  for (const p of ['src', 'bin', 'scripts/build.cjs', 'tsconfig.json', 'tsconfig.build.json', 'package.json']) {
    cpSync(path.join(repo, p), path.join(scratch, p), { recursive: true });
  }
  mkdirSync(path.join(scratch, 'node_modules'));
  for (const name of readdirSync(path.join(repo, 'node_modules'))) {
    if (name === 'tsx' || name.startsWith('.')) continue;
    symlinkSync(path.join(repo, 'node_modules', name), path.join(scratch, 'node_modules', name));
  }
});

describe('package build', () => {
  it('declares only what runs the compiled JavaScript as dependencies', () => {
    const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));
    for (const dev of ['tsx', 'typescript']) {
      assert.equal(pkg.dependencies[dev], undefined, `${dev} is a development dependency`);
      assert.ok(pkg.devDependencies[dev], `${dev} is a development dependency`);
    }
    assert.equal(pkg.scripts.build, 'node scripts/build.cjs');
    assert.equal(pkg.scripts.prepare, 'node scripts/build.cjs');
    assert.equal(pkg.bin.txgate, 'bin/txgate.cjs');
    for (const f of ['dist', 'bin', 'scripts']) assert.ok(pkg.files.includes(f), `the package ships ${f}/`);
  });

  it('compiles to JavaScript and declarations that plain node can import', { timeout: 120_000 }, () => {
    const r = build();
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.ok(existsSync(path.join(scratch, 'dist', 'index.d.ts')), 'declarations are emitted');
    assert.match(stamp(), /^\{"src":"[0-9a-f]{64}","config":"[0-9a-f]{64}"\}\n$/);
    assert.deepEqual(readdirSync(scratch).filter((f) => f.startsWith('.dist-build-')), [], 'no build directory is left behind');
    const probe = `
      const lib = await import(${JSON.stringify(path.join(scratch, 'dist', 'index.js'))});
      const names = ['TransactionalProducerPool', 'createConfluentProducerFactory', 'consumeTransformProduce', 'createPoolMetrics',
        'TransactionAbortedError', 'TransactionOutcomeUnknownError', 'PoolSaturatedError', 'classify', 'isFencing'];
      console.log(JSON.stringify(names.filter((n) => typeof lib[n] !== 'function')));
    `;
    // No --import tsx: this is what a JavaScript user's process looks like.
    const missing = run(['--input-type=module', '-e', probe]);
    assert.equal(missing.stdout.trim(), '[]', missing.stderr);
  });

  it('bin/txgate.cjs runs the compiled CLI, with no tsx installed', () => {
    const r = txgate(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: txgate /);
    assert.match(r.stdout, /^ {2}kafka /m);
    assert.equal(r.stderr, '');
  });

  it('--if-stale does nothing while dist/ matches src/', () => {
    const before = stamp();
    const mtime = statSync(path.join(scratch, 'dist', 'index.js')).mtimeMs;
    const r = build('--if-stale');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(stamp(), before);
    assert.equal(statSync(path.join(scratch, 'dist', 'index.js')).mtimeMs, mtime, 'not recompiled');
  });

  it('a dist/ older than src/ is never run silently, and --if-stale recompiles it', { timeout: 120_000 }, () => {
    // a source file changed, one was deleted, and one that is not TypeScript was added
    appendFileSync(path.join(scratch, 'src', 'index.ts'), '\n// changed after the build\n');
    rmSync(path.join(scratch, 'src', 'cli', 'commands', 'kafka.ts'));
    writeFileSync(path.join(scratch, 'src', 'cli', 'asset.txt'), 'read at run time\n');

    const stale = txgate(['--help']);
    assert.equal(stale.status, 1, 'no tsx to fall back on: it fails');
    assert.match(stale.stderr, /txgate: dist\/ was compiled from an older src\/: running src\/ through tsx instead/);
    assert.match(stale.stderr, /cannot run src\/ without tsx/);

    // with tsx (a development checkout) it runs the current source, and says so
    symlinkSync(path.join(repo, 'node_modules', 'tsx'), path.join(scratch, 'node_modules', 'tsx'));
    try {
      const dev = txgate(['--help']);
      assert.equal(dev.status, 0, dev.stderr);
      assert.match(dev.stderr, /^txgate: dist\/ was compiled from an older src\/: running src\/ through tsx instead/);
      assert.doesNotMatch(dev.stdout, /^ {2}kafka /m, 'the current source: the deleted command is gone');
    } finally {
      rmSync(path.join(scratch, 'node_modules', 'tsx'));
    }

    const r = build('--if-stale');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /build: src\/ or the build configuration changed since dist\/ was built: compiling src\/ \(tsc --noCheck/);
    assert.equal(existsSync(path.join(scratch, 'dist', 'cli', 'commands', 'kafka.js')), false, 'nothing of the deleted file survives');
    assert.equal(readFileSync(path.join(scratch, 'dist', 'cli', 'asset.txt'), 'utf8'), 'read at run time\n', 'assets are copied');
    const fresh = txgate(['--help']);
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.equal(fresh.stderr, '');
    assert.doesNotMatch(fresh.stdout, /^ {2}kafka /m);
  });

  it('TXGATE_DEV=1 runs src/ through tsx, and needs it', () => {
    const r = txgate(['--help'], { TXGATE_DEV: '1' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot run src\/ without tsx/);
  });

  it('a configuration change is a reason to recompile too', { timeout: 120_000 }, () => {
    const before = stamp();
    const tsconfig = path.join(scratch, 'tsconfig.build.json');
    writeFileSync(tsconfig, readFileSync(tsconfig, 'utf8').replace('"sourceMap": true', '"sourceMap": false'));
    const r = build('--if-stale');
    assert.equal(r.status, 0, r.stderr);
    assert.notEqual(stamp(), before);
    assert.equal(existsSync(path.join(scratch, 'dist', 'index.js.map')), false);
  });
});
