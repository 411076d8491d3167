#!/usr/bin/env node
'use strict';
/**
 * build.cjs: compiles src/ to dist/ (tsconfig.build.json), copies src/'s other files (assets) beside
 * the JavaScript, and stamps dist/ with the digest of the src/ it was compiled from. bin/txgate.cjs
 * compares that digest with src/ before it runs dist/, so a stale dist/ never runs silently.
 *
 *   node scripts/build.cjs             `npm run build` and npm's prepare: type-checked, fails on any error
 *   node scripts/build.cjs --if-stale  setup.sh and test.sh: compiles only when src/ or the build's
 *                                      configuration changed since dist/ was built (otherwise a few ms),
 *                                      without the type check (tsc --noCheck, as tsx ran src/: the
 *                                      typecheck is test.sh's and `npm run typecheck`'s job)
 *
 * The new tree is compiled beside dist/ and renamed into place: a process starting meanwhile finds a
 * whole dist/, old or new, and nothing compiled from a deleted source file survives.
 */
const { spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { srcDigest, BUILD_STAMP } = require('../bin/txgate.cjs');

const ROOT = path.join(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const log = (msg) => process.stderr.write(`build: ${msg}\n`);

/** What else decides the output: the build's configuration, this script and the compiler's version. */
function configDigest() {
  const hash = createHash('sha256');
  for (const file of ['tsconfig.json', 'tsconfig.build.json', 'scripts/build.cjs', 'node_modules/typescript/package.json']) {
    let text = '';
    try {
      text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    } catch {
      // a missing file is part of the state too
    }
    if (file.startsWith('node_modules/')) text = text && JSON.parse(text).version;
    hash.update(`${file}\0${text}\0`);
  }
  return hash.digest('hex');
}

function readStamp() {
  try {
    return JSON.parse(fs.readFileSync(path.join(DIST, BUILD_STAMP), 'utf8'));
  } catch {
    return undefined;
  }
}

function main(args) {
  const ifStale = args.includes('--if-stale');
  const src = srcDigest(ROOT);
  if (src === undefined) throw new Error(`no src/ in ${ROOT}`);
  const config = configDigest();
  if (ifStale) {
    const stamp = readStamp();
    if (stamp && stamp.src === src && stamp.config === config) return 0;
    log(`${stamp ? 'src/ or the build configuration changed since dist/ was built' : 'dist/ is missing or unstamped'}: compiling src/ (tsc --noCheck, a few seconds)`);
  }

  // Beside dist/, so that the source maps' relative paths to src/ hold once it is renamed to dist/.
  // (mkdir, not mkdtemp: dist/ gets the usual permissions, not mkdtemp's 0700)
  const out = path.join(ROOT, `.dist-build-${process.pid}-${Date.now()}`);
  fs.mkdirSync(out);
  let done = false;
  try {
    const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', out, ...(ifStale ? ['--noCheck'] : [])], {
      stdio: 'inherit',
    });
    if (r.status !== 0) {
      log(`tsc failed (${r.status === null ? `signal ${r.signal}` : `exit ${r.status}`}): dist/ is unchanged`);
      return r.status || 1;
    }
    // tsc only emits JavaScript: files that src/ reads at run time (pages, data) must sit beside it
    const srcDir = path.join(ROOT, 'src');
    for (const e of fs.readdirSync(srcDir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || /\.[cm]?ts$/.test(e.name)) continue;
      const rel = path.relative(srcDir, path.join(e.parentPath, e.name));
      fs.mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
      fs.copyFileSync(path.join(srcDir, rel), path.join(out, rel));
    }
    fs.writeFileSync(path.join(out, BUILD_STAMP), `${JSON.stringify({ src, config })}\n`);

    const old = `${out}.old`;
    try {
      fs.renameSync(DIST, old);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    try {
      fs.renameSync(out, DIST);
      done = true;
    } catch (err) {
      // another build (a second test run) put its dist/ in place between the two renames
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      if (readStamp()?.src !== src) log('another build replaced dist/ meanwhile; kept its output');
    }
    fs.rmSync(old, { recursive: true, force: true });
    if (ifStale) log('dist/ is up to date');
    return 0;
  } finally {
    if (!done) fs.rmSync(out, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
