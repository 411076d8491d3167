/**
 * The library works for users who do not run TypeScript: `npm run build` (also run by npm's
 * prepare step) compiles src/ to JavaScript with declarations, and plain node imports it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Inside the repository, so that the build's imports find node_modules the way an install would.
const outDir = mkdtempSync(path.join(root, '.build-test-'));
after(() => rmSync(outDir, { recursive: true, force: true }));

it('compiles to JavaScript and declarations that plain node can import', { timeout: 120_000 }, () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', outDir], { stdio: 'pipe' });
  assert.ok(existsSync(path.join(outDir, 'index.d.ts')), 'declarations are emitted');
  const probe = `
    const lib = await import(${JSON.stringify(path.join(outDir, 'index.js'))});
    const names = ['TransactionalProducerPool', 'createConfluentProducerFactory', 'consumeTransformProduce', 'createPoolMetrics',
      'TransactionAbortedError', 'TransactionOutcomeUnknownError', 'PoolSaturatedError', 'classify', 'isFencing'];
    console.log(JSON.stringify(names.filter((n) => typeof lib[n] !== 'function')));
  `;
  // No --import tsx: this is what a JavaScript user's process looks like.
  const missing = execFileSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' }).trim();
  assert.equal(missing, '[]');
});
