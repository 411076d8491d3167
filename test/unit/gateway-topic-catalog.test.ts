import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TopicCatalog, TopicMetadataError, type TopicMetadataSource } from '../../src/gateway/service/topic-catalog.js';

function source(topics: Map<string, number>) {
  const calls: string[][] = [];
  let release: (() => void) | undefined;
  let gate: Promise<void> | undefined;
  const s: TopicMetadataSource & { calls: string[][]; hold(): void; release(): void } = {
    calls,
    hold() {
      gate = new Promise((r) => (release = r));
    },
    release() {
      release?.();
    },
    async describe(names) {
      calls.push([...names]);
      await gate;
      return new Map(names.map((n) => [n, topics.get(n) ?? null]));
    },
    async ping() {},
    async close() {},
  };
  return s;
}

test('caches counts for the TTL, re-asks on a miss, and remembers absence only briefly', async () => {
  let now = 0;
  const topics = new Map([['a', 2]]);
  const src = source(topics);
  const catalog = new TopicCatalog(src, { ttlMs: 1000, negativeTtlMs: 100, now: () => now });
  assert.deepEqual(await catalog.lookup(new Map([['a', -1], ['b', -1]])), new Map([['a', 2], ['b', null]]));
  assert.equal(src.calls.length, 1);
  await catalog.lookup(new Map([['a', 1], ['b', -1]]));
  assert.equal(src.calls.length, 1, 'both answers are cached');
  // a partition beyond the cached count is a miss: partitions may have been added
  topics.set('a', 4);
  assert.equal((await catalog.lookup(new Map([['a', 3]]))).get('a'), 4);
  assert.deepEqual(src.calls.at(-1), ['a']);
  // the topic is created: found once the negative entry expires
  topics.set('b', 1);
  now = 101;
  assert.equal((await catalog.lookup(new Map([['b', -1]]))).get('b'), 1);
  const calls = src.calls.length;
  now = 1200;
  await catalog.lookup(new Map([['a', -1]]));
  assert.equal(src.calls.length, calls + 1, 'expired entries are refreshed');
});

test('concurrent lookups of the same topic share one metadata request', async () => {
  const src = source(new Map([['a', 1]]));
  const catalog = new TopicCatalog(src);
  src.hold();
  const lookups = Array.from({ length: 5 }, () => catalog.lookup(new Map([['a', -1]])));
  src.release();
  for (const r of await Promise.all(lookups)) assert.equal(r.get('a'), 1);
  assert.equal(src.calls.length, 1);
});

test('failures surface as TopicMetadataError and are not cached', async () => {
  let fail = true;
  const catalog = new TopicCatalog({
    async describe(names) {
      if (fail) throw new Error('timed out');
      return new Map(names.map((n) => [n, 1]));
    },
    async ping() {},
    async close() {},
  });
  await assert.rejects(catalog.lookup(new Map([['a', -1]])), (e: unknown) => e instanceof TopicMetadataError && /timed out/.test(e.message));
  fail = false;
  assert.equal((await catalog.lookup(new Map([['a', -1]]))).get('a'), 1);
});

test('names that do not exist are remembered up to maxMissing (oldest first): clients cannot grow the cache without bound', async () => {
  const now = 0;
  const src = source(new Map([['real', 1]]));
  const catalog = new TopicCatalog(src, { negativeTtlMs: 60_000, maxMissing: 2, now: () => now });
  const ask = (...names: string[]) => catalog.lookup(new Map(names.map((n) => [n, -1])));
  await ask('real', 'x1', 'x2');
  await ask('x1', 'x2', 'real');
  assert.equal(src.calls.length, 1, 'both absences and the topic are cached');
  // A third missing name pushes out the oldest; the topic that exists is not counted.
  await ask('x3');
  await ask('x2', 'x3', 'real');
  assert.equal(src.calls.length, 2);
  await ask('x1');
  assert.deepEqual(src.calls.at(-1), ['x1'], 'x1 was forgotten and asked again');
  // A name that turns out to exist leaves the missing list.
  await ask('x2', 'x3');
  assert.equal(src.calls.length, 4, 'x2 went when x1 came back');
});

test('forget: a topic deleted meanwhile is found missing at the next lookup, not after the TTL', async () => {
  const topics = new Map([['a', 2], ['b', 1]]);
  const src = source(topics);
  const catalog = new TopicCatalog(src, { ttlMs: 30_000, now: () => 0 });
  await catalog.lookup(new Map([['a', -1], ['b', -1]]));
  topics.delete('a');
  assert.equal((await catalog.lookup(new Map([['a', -1]]))).get('a'), 2, 'cached within the TTL');
  catalog.forget(['a']);
  assert.equal((await catalog.lookup(new Map([['a', -1]]))).get('a'), null);
  assert.equal(src.calls.length, 2);
  await catalog.lookup(new Map([['b', -1]]));
  assert.equal(src.calls.length, 2, 'other topics stay cached');
});
