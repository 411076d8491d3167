// The error catalogue is the one list of stable codes: everything else must agree with it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CATALOGUE, type AnsweredAsEntry, type ErrorCode, type ProblemEntry } from '../../src/error-catalogue.js';
import * as errors from '../../src/errors.js';
import { problemFromServiceError } from '../../src/gateway/http/error-mapping.js';
import { PROBLEMS } from '../../src/gateway/http/problems.js';
import { GatewayStartError } from '../../src/gateway/startup.js';
import { SlotInvariantError } from '../../src/pool/slot.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const entries = Object.entries(ERROR_CATALOGUE) as Array<[ErrorCode, ProblemEntry | AnsweredAsEntry]>;

/** Every class that may carry a code; constructed without arguments, each still has its code. */
const classes: Record<string, unknown> = { ...errors, GatewayStartError, SlotInvariantError };

function codeOf(name: string): unknown {
  const Class = classes[name] as (new () => { code?: unknown }) | undefined;
  assert.ok(Class, `${name} is exported`);
  return new Class().code;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((f) => f.isFile() && f.name.endsWith('.ts'))
    .map((f) => join(f.parentPath, f.name));
}

test('every TXGATE_ code used in src, test and bench is in the catalogue', () => {
  const texts = ['src', 'test', 'bench'].flatMap(sourceFiles).map((file) => readFileSync(file, 'utf8'));
  // TXGATE_ is also the prefix of environment variables: those are named where they are read.
  const envNames = new Set(texts.flatMap((t) => [...t.matchAll(/(?:\.env\(|env\.|env\[)['"]?(TXGATE_[A-Z0-9_]+)/g)].map((m) => m[1]!)));
  const used = new Set(texts.flatMap((t) => [...t.matchAll(/(['"`])(TXGATE_[A-Z0-9_]+)\1/g)].map((m) => m[2]!)));
  assert.ok(used.has('TXGATE_POOL_SATURATED') && envNames.has('TXGATE_BROKERS'), 'the scan finds codes and environment variables');
  const missing = [...used].filter((code) => !envNames.has(code) && !Object.hasOwn(ERROR_CATALOGUE, code));
  assert.deepEqual(missing, [], 'codes missing from src/error-catalogue.ts');
});

test('each code is either a problem of its own or answered as one', () => {
  const slugs = new Set<string>();
  for (const [code, entry] of entries) {
    if ('slug' in entry) {
      assert.ok(!slugs.has(entry.slug), `${code}: slug ${entry.slug} is unique`);
      slugs.add(entry.slug);
      assert.ok(entry.status >= 400 && entry.status < 600 && entry.title !== '' && entry.help.length > 20 && entry.written !== '', code);
      assert.deepEqual(PROBLEMS[code as keyof typeof PROBLEMS], { slug: entry.slug, title: entry.title, status: entry.status }, code);
    } else {
      assert.ok(Object.hasOwn(PROBLEMS, entry.answeredAs), `${code} is answered as a problem`);
      assert.ok(!Object.hasOwn(PROBLEMS, code), `${code} has no page of its own`);
    }
  }
});

test('each class carries the code the catalogue gives it, and every coded class is listed', () => {
  for (const [code, entry] of entries) if (entry.class !== undefined) assert.equal(codeOf(entry.class), code, entry.class);
  const listed = new Set(entries.map(([, entry]) => entry.class));
  for (const [name, value] of Object.entries(errors)) {
    if (typeof value !== 'function' || !(value.prototype instanceof errors.TxGateError)) continue;
    if (codeOf(name) === undefined) continue; // a base class (TransactionError) takes its code from its subclasses
    assert.ok(listed.has(name), `${name} is in the catalogue`);
  }
});

test('the gateway answers each library error with the problem the catalogue names', () => {
  for (const [code, entry] of entries) {
    if (entry.class === undefined) continue;
    const Class = classes[entry.class] as new () => unknown;
    const problem = problemFromServiceError(new Class(), { hadIdempotencyKey: true });
    assert.equal(problem.code, 'answeredAs' in entry ? entry.answeredAs : code, entry.class);
  }
});

test("the README's library error table names each class with its catalogue code", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `([A-Za-z]+Error)` \| `(TXGATE_[A-Z_]+)` \|/gm)];
  assert.ok(rows.length >= 9, 'the table is found');
  for (const [, name, code] of rows) {
    const entry = (ERROR_CATALOGUE as Record<string, ProblemEntry | AnsweredAsEntry>)[code!];
    assert.ok(entry, `${code} is in the catalogue`);
    assert.equal(entry.class, name, code);
  }
});
