import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileDigests, memoEntries } from '../src/keys/file-digests.js';
import { digestBytes, digestFile } from '../src/util/hash.js';
import { Bounds, NO_OUTSIDE } from '../src/workspace-bounds.js';
import { dfwe, ran, workspace } from './helpers.js';

// Objects are named by these digests, in every cache and on every shared store: a digest worked
// out another way (a one-shot call for small inputs, streaming for large ones) must be the same.
test('content digests are what earlier dfwe computed, for bytes, text and files, below, at and above a read chunk', () => {
  const ws = workspace();
  const pattern = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255));
  const known: [string, string | Buffer, string][] = [
    ['empty', '', '2d06800538d394c2602b0e2cd6662c8b'],
    ['x', 'x', 'eaf06c6480b2cd11da45103370491bbf'],
    ['unicode', 'Grüße, 世界 🌍', '759d7d75fe0206d39367a3a8ffb0d588'],
    ['1000 bytes', pattern(1000), '989765d0ea7a5ecd75b5719d9f31a6a2'],
    ['1 MiB', pattern(1 << 20), '269eb834f6c110a99d9c4714fe7a5bca'],
    ['1 MiB + 1', pattern((1 << 20) + 1), 'a52e79bed55265105463780fc9243daa'],
    ['3 MiB', pattern(3 << 20), '830ee929df66f0abe16c6ce101fef124'],
  ];
  for (const [name, data, digest] of known) {
    assert.equal(digestBytes(data), digest, name);
    writeFileSync(join(ws, 'f'), data);
    assert.equal(digestFile(join(ws, 'f')), digest, `${name}, as a file`);
  }
});

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
  assert.ok(memoEntries(memo).get(f), 'memo saved');
  const again = new FileDigests(memo, new Bounds(ws, NO_OUTSIDE));
  assert.equal(again.digest(f), digestBytes('v9'));
  assert.equal(again.digest(join(ws, 'missing')), undefined);
});

test('a save after a few hashes appends to the log; a long log is folded into the memo; a line cut short is skipped', () => {
  const ws = workspace();
  const memo = join(ws, 'memo.json');
  const log = `${memo}.log`;
  const past = new Date(Date.now() - 60_000);
  const file = (name: string): string => {
    const p = join(ws, name);
    writeFileSync(p, name);
    utimesSync(p, past, past);
    return p;
  };
  const open = (): FileDigests => new FileDigests(memo, new Bounds(ws, NO_OUTSIDE));
  const first = open();
  first.digest(file('a'));
  first.save();
  assert.ok(!existsSync(log), 'the first save writes the memo whole');
  const memoBytes = readFileSync(memo);
  const second = open();
  second.digest(join(ws, 'a'));
  second.digest(file('b'));
  second.save();
  assert.deepEqual(readFileSync(memo), memoBytes, 'the memo is not rewritten for one new entry');
  assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l)[0]), [join(ws, 'b')], 'only what was hashed is appended');
  appendFileSync(log, '["cut short", [1, 2');
  appendFileSync(log, '\n');
  const third = open();
  third.digest(file('c'));
  third.save();
  assert.match(readFileSync(log, 'utf8'), /"cut short"[^\n]*\n.*\/c"/);
  // Enough new entries to outgrow the log's bound: memo and log become one memo again.
  mkdirSync(join(ws, 'many'));
  const fourth = open();
  for (let i = 0; i < 2500; i++) fourth.digest(file(`many/${i}`));
  fourth.save();
  assert.ok(!existsSync(log), 'the log is folded');
  const folded = memoEntries(memo);
  for (const name of ['a', 'b', 'c', 'many/2499']) assert.equal(folded.get(join(ws, name))?.[5], digestBytes(name), `${name} kept`);
  assert.equal(folded.get('cut short'), undefined);
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
