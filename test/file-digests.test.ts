import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileDigests } from '../src/keys/file-digests.js';
import { digestBytes } from '../src/util/hash.js';
import { Bounds, NO_OUTSIDE } from '../src/workspace-bounds.js';
import { dfwe, ran, workspace } from './helpers.js';

test('a same-size rewrite right after hashing is seen (racy-clean rule), and the memo survives a restart', () => {
  const ws = workspace();
  const f = join(ws, 'f.txt');
  const memo = join(ws, 'memo.json');
  const d = new FileDigests(memo, new Bounds(ws, NO_OUTSIDE));
  for (let i = 0; i < 20; i++) {
    // Within the same timestamp tick, size, mtime and ctime can all stay equal: only the
    // racy rule (re-hash what was hashed too soon after its mtime) catches this.
    writeFileSync(f, `v${i % 10}`);
    assert.equal(d.digest(f), digestBytes(`v${i % 10}`));
  }
  d.save();
  const entries = JSON.parse(readFileSync(memo, 'utf8'));
  assert.ok(entries[f], 'memo saved');
  const again = new FileDigests(memo, new Bounds(ws, NO_OUTSIDE));
  assert.equal(again.digest(f), digestBytes('v9'));
  assert.equal(again.digest(join(ws, 'missing')), undefined);
});

test('an old file is served from the memo; editing it changes its digest', () => {
  const ws = workspace();
  const f = join(ws, 'old.txt');
  writeFileSync(f, 'hello');
  const past = new Date(Date.now() - 60_000);
  utimesSync(f, past, past);
  const d = new FileDigests(undefined, new Bounds(ws, NO_OUTSIDE));
  assert.equal(d.digest(f), digestBytes('hello'));
  assert.equal(d.digest(f), digestBytes('hello'));
  writeFileSync(f, 'world');
  assert.equal(d.digest(f), digestBytes('world'));
});

test('a directory digest covers names, contents and exec bits', () => {
  const ws = workspace();
  mkdirSync(join(ws, 'd/sub'), { recursive: true });
  writeFileSync(join(ws, 'd/a'), '1');
  writeFileSync(join(ws, 'd/sub/b'), '2');
  const d = new FileDigests(undefined, new Bounds(ws, NO_OUTSIDE));
  const first = d.digest(join(ws, 'd'));
  writeFileSync(join(ws, 'd/sub/c'), '');
  const second = d.digest(join(ws, 'd'));
  assert.notEqual(first, second);
  chmodSync(join(ws, 'd/a'), 0o755);
  assert.notEqual(d.digest(join(ws, 'd')), second);
});

test('the cache location follows --cache and DFWE_CACHE', () => {
  const p = 'version: 1\nstages:\n  a:\n    cmd: mkdir -p out && echo a > out/a\n    outs: { f: out/a }\n';
  const ws = workspace({ 'dfwe.yaml': p });
  assert.equal(dfwe(ws, ['run'], { DFWE_CACHE: 'elsewhere' }).code, 0);
  assert.ok(readFileSync(join(ws, 'out/a'), 'utf8'));
  assert.deepEqual(ran(dfwe(ws, ['run', '--cache', 'elsewhere'])), []);
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['a']); // the default cache is a different one
});
