import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CacheStore } from '../src/cache/store.js';
import { workspace } from './helpers.js';
import { servedPath, type ServedSet } from '../src/history/run-log.js';
import { readServed, servedSetText, storeServedText, StoredServedSet, type ServedEntry } from '../src/history/served-set.js';
import { digestBytes } from '../src/util/hash.js';

/*
 * A served set is stored one entry a line (served-set.ts), so that a run of a few nodes reads only
 * the entries it needs and writes the next set from the earlier one's lines. Whatever reads it
 * whole (runs, diff, gc) must read the same set.
 */

const D = (c: string): string => c.repeat(32);
const ENTRIES: ServedEntry[] = [
  ['prep', 'prep', D('a'), null, { p: D('1') }],
  ['score[i=0]', 'score', D('b'), { acc: 0.5, 'f1,x': 0.25 }, { m: D('2'), v: D('3') }],
  // Ids, stages and metric names are anyone's text: quotes, commas, newlines, non-ASCII.
  ['say["a,b"]\n', 'sày', D('c'), { 'l\nine': 1 }, null],
  ['old', 'old', D('d'), null],
];

function store(): CacheStore {
  return new CacheStore(join(workspace(), 'cache'));
}

test('a served set stored one entry a line is read whole as JSON and entry by entry, each entry as it was', () => {
  const s = store();
  const text = servedSetText(ENTRIES.map((e) => JSON.stringify(e)));
  assert.equal(text.split('\n').length, ENTRIES.length + 2, 'one line an entry, between the opening and the closing line');
  const digest = storeServedText(s, text)!;
  assert.deepEqual(readServed(s, digest), { format: 1, nodes: ENTRIES } satisfies ServedSet);
  const set = StoredServedSet.read(s, digest)!;
  assert.equal(set.length, ENTRIES.length);
  ENTRIES.forEach((e, i) => {
    assert.deepEqual(set.entry(i), e);
    assert.equal(set.line(i), JSON.stringify(e), 'a line is carried over as it was written');
  });
  assert.equal(set.entry(ENTRIES.length), undefined);
  assert.equal(set.entry(-1), undefined);
  const empty = StoredServedSet.read(s, storeServedText(s, servedSetText([])))!;
  assert.equal(empty.length, 0);
});

test('a served set written on one line (before one entry a line) is read entry by entry too', () => {
  const s = store();
  const text = JSON.stringify({ format: 1, nodes: ENTRIES });
  const digest = digestBytes(text);
  mkdirSync(dirname(servedPath(s, digest)), { recursive: true });
  writeFileSync(servedPath(s, digest), text);
  const set = StoredServedSet.read(s, digest)!;
  assert.equal(set.length, ENTRIES.length);
  ENTRIES.forEach((e, i) => assert.deepEqual(set.entry(i), e));
});

test('a served set that is not its digest\'s, or not a set, is not read; a damaged entry is not served', () => {
  const s = store();
  const text = servedSetText(ENTRIES.map((e) => JSON.stringify(e)));
  const digest = storeServedText(s, text)!;
  writeFileSync(servedPath(s, digest), text.replace('prep', 'PREP'));
  assert.equal(StoredServedSet.read(s, digest), undefined, 'changed since it was stored');
  assert.equal(StoredServedSet.read(s, D('e')), undefined, 'not there');
  assert.equal(StoredServedSet.read(s, '../x'), undefined, 'not a digest');
  for (const bad of ['{"format":1,"nodes":[\n["a","a"]\n["b"]\n]}', '[1,2]', '{"format":2,"nodes":[]}']) {
    const d = storeServedText(s, bad)!;
    assert.equal(StoredServedSet.read(s, d), undefined, bad);
  }
  // Lines that parse as a set, one of whose entries is not an entry: that entry alone is refused.
  const d = storeServedText(s, servedSetText([JSON.stringify(ENTRIES[0]), '["x","x",5,null]', JSON.stringify(ENTRIES[1])]))!;
  const set = StoredServedSet.read(s, d)!;
  assert.deepEqual(set.entry(0), ENTRIES[0]);
  assert.equal(set.entry(1), undefined);
  assert.deepEqual(set.entry(2), ENTRIES[1]);
});
