#!/usr/bin/env node
'use strict';
// CommonJS on purpose: this file runs before any ES module loads, so the line below happens
// before anything can touch libuv's thread pool. libuv sizes the pool once, on first use.
// Every blocking librdkafka transactional call (init, commit, abort, send offsets) holds one
// pool thread until the broker answers; libuv's default of 4 would cap the whole process at
// 4 concurrent commits and starve fs/dns work queued behind them.
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '64';

const { createHash } = require('node:crypto');
const { readdirSync, readFileSync } = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const ROOT = path.join(__dirname, '..');
/** Written by scripts/build.cjs into the compiled tree: JSON whose `src` is the srcDigest() of the src/ it was compiled from. */
const BUILD_STAMP = '.txgate-build';

/** A digest of every file under <root>/src, by path and content; undefined when there is no src/. */
function srcDigest(root = ROOT) {
  const src = path.join(root, 'src');
  let entries;
  try {
    entries = readdirSync(src, { recursive: true, withFileTypes: true });
  } catch {
    return undefined;
  }
  const files = entries.filter((e) => e.isFile()).map((e) => path.relative(src, path.join(e.parentPath, e.name))).sort();
  const hash = createHash('sha256');
  for (const file of files) {
    const bytes = readFileSync(path.join(src, file));
    hash.update(`${file}\0${bytes.length}\0`).update(bytes);
  }
  return hash.digest('hex');
}

/** The srcDigest() that dist/ was compiled from; undefined when dist/ is missing or was not built by scripts/build.cjs. */
function builtDigest() {
  try {
    return JSON.parse(readFileSync(path.join(ROOT, 'dist', BUILD_STAMP), 'utf8')).src;
  } catch {
    return undefined;
  }
}

/** Whether to run src/ through tsx rather than the compiled dist/: TXGATE_DEV=1, or a dist/ that does not match src/. */
function runSource() {
  if (process.env.TXGATE_DEV === '1') return true;
  const src = srcDigest();
  const built = builtDigest();
  // A package without src/ cannot tell: it runs what it ships.
  if (src === undefined || src === built) return false;
  // Never run stale JavaScript silently: say so, and run the source through tsx (a development dependency).
  process.stderr.write(
    `txgate: dist/ ${built === undefined ? 'is missing or was not built by scripts/build.cjs' : 'was compiled from an older src/'}: ` +
      'running src/ through tsx instead (npm run build compiles it; npm start and npm test do that themselves)\n',
  );
  return true;
}

function run() {
  // TypeScript through tsx: importing 'tsx' registers its hooks, as `node --import tsx` does.
  // (tsx 4's require('tsx/esm/api').register() fails from CommonJS.)
  const loaded = runSource()
    ? import('tsx').then(
        () => import(pathToFileURL(path.join(ROOT, 'src', 'cli', 'main.ts')).href),
        (err) => {
          throw new Error(`txgate: cannot run src/ without tsx (a development dependency; run npm run build instead): ${err.message}`);
        },
      )
    : import(pathToFileURL(path.join(ROOT, 'dist', 'cli', 'main.js')).href);
  loaded
    .then((cli) => cli.main(process.argv))
    .catch((err) => {
      console.error(err && err.stack ? err.stack : err);
      process.exitCode = 1;
    });
}

module.exports = { srcDigest, BUILD_STAMP };

if (require.main === module) run();
