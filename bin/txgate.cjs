#!/usr/bin/env node
'use strict';
// CommonJS on purpose: this file runs before any ES module loads, so the line below happens
// before anything can touch libuv's thread pool. libuv sizes the pool once, on first use.
// Every blocking librdkafka transactional call (init, commit, abort, send offsets) holds one
// pool thread until the broker answers; libuv's default of 4 would cap the whole process at
// 4 concurrent commits and starve fs/dns work queued behind them.
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = '64';

const path = require('node:path');
const { pathToFileURL } = require('node:url');

// TypeScript runs through tsx (no build step): importing 'tsx' registers its hooks, as
// `node --import tsx` does. (tsx 4's require('tsx/esm/api').register() fails from CommonJS.)
import('tsx')
  .then(() => import(pathToFileURL(path.join(__dirname, '..', 'src', 'cli', 'main.ts')).href))
  .then((cli) => cli.main(process.argv))
  .catch((err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exitCode = 1;
  });
