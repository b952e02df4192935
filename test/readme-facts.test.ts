import { createHash } from 'node:crypto';
import { keyOf } from '../src/util/hash.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, REPO, rot, workspace } from './helpers.js';

/** The documentation's claims that a command can check: a figure in it is one the code gives. */
const README = ['README.md', 'docs/pipelines.md', 'docs/caching.md'].map((f) => readFileSync(join(REPO, f), 'utf8')).join('\n').replace(/\s+/g, ' ');

test('the README gives the node count that `dfwe expand` gives for pipelines/sweep.yaml', () => {
  const said = /pipelines\/sweep\.yaml\)? is the DFWE sweep .*?which is (\d+) members and (\d+) nodes/.exec(README);
  assert.ok(said, 'the README states the sweep size');
  const ws = workspace();
  const r = dfwe(ws, ['expand', '--json', join(REPO, 'pipelines/sweep.yaml')]);
  assert.equal(r.code, 0, r.stderr);
  const expanded = JSON.parse(r.stdout);
  assert.equal(expanded.members, Number(said[1]));
  assert.equal(expanded.nodes.length, Number(said[2]));
});

test('the README says what keys are, and they are that: 128 bits of a sha256, in hex', () => {
  assert.match(README, /both the first 128 bits of a sha256 of canonical JSON \(32 hex characters/);
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo a > out/a\n    outs: { f: out/a }\n' });
  const node = JSON.parse(dfwe(ws, ['status', '--json']).stdout).nodes[0];
  assert.match(node.planKey, /^[0-9a-f]{32}$/);
  assert.match(node.execKey, /^[0-9a-f]{32}$/);
  // And the key function is that: sha256 of JSON with sorted keys and no spaces, written out here by hand.
  const canonical = '{"a":[true,"x",{"c":2.5,"d":null}],"b":1}';
  assert.equal(keyOf({ b: 1, a: [true, 'x', { d: null, c: 2.5 }] }), createHash('sha256').update(canonical).digest('hex').slice(0, 32));
});

test('silent damage to an object no node reads again is found by verify, as the README says', () => {
  assert.match(README, /damage to an object that no node reads or restores again .* is found only by `dfwe verify`/);
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  leaf:\n    cmd: seq 1000 > out/leaf\n    outs: { f: out/leaf }\n' });
  assert.equal(dfwe(ws, ['run']).code, 0);
  rot(ws, 'leaf');
  // status trusts the seal (a stat per file): the flip with the mtime put back goes unseen.
  assert.match(dfwe(ws, ['status']).stdout, /1 cached, 0 will run/);
  const v = dfwe(ws, ['verify']);
  assert.equal(v.code, 1);
  assert.match(v.stdout, /1 corrupt/);
  assert.match(dfwe(ws, ['status']).stdout, /0 cached, 1 will run/);
});
