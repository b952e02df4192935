import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, ran, workspace } from './helpers.js';

/*
 * `dfwe run NODE|STAGE …` and `dfwe status NODE|STAGE …` (issue 24): only the targets and what
 * they need, as `make target` and `dvc repro STAGE` do.
 */

const PIPE = `version: 1
sweep:
  target: [a, b]
stages:
  data:
    cmd: echo d > data.txt
    outs: { o: data.txt }
  train:
    foreach: { lr: [1, 2] }
    cmd: cat \${{ stages.data.outs.o }} > \${{ outs.m }} && echo \${{ lr }} >> \${{ outs.m }}
    outs: { m: ~ }
  test:
    cmd: cat \${{ stages.train.outs.m }} > \${{ outs.r }} && echo \${{ target }} >> \${{ outs.r }}
    outs: { r: ~ }
  unrelated:
    cmd: echo u > u.txt
    outs: { o: u.txt }
`;

test('run STAGE runs that stage\'s nodes and their ancestors only; run NODE one node; the rest runs later', () => {
  const ws = workspace({ 'dfwe.yaml': PIPE });
  const st = dfwe(ws, ['status', 'train']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /3 nodes: 0 cached, 3 will run/);
  assert.doesNotMatch(st.stdout, /test|unrelated/);

  const r = dfwe(ws, ['run', 'train']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['data', 'train[lr=1]', 'train[lr=2]']);
  assert.ok(!existsSync(join(ws, 'u.txt')));

  // A node id, with the pipeline named first; its ancestors are cached.
  const one = dfwe(ws, ['run', 'dfwe.yaml', 'test[target=b]']);
  assert.equal(one.code, 0, one.stderr);
  assert.deepEqual(ran(one), ['test[target=b]']);

  // A targeted run writes no snapshot: the whole pipeline is planned and its remaining nodes run.
  assert.match(dfwe(ws, ['status']).stdout, /6 nodes: 4 cached, 2 will run/);
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['test[target=a]', 'unrelated']);
  assert.deepEqual(ran(dfwe(ws, ['run', 'test'])), []);
});

test('a stage target respects --only; an unknown target is an input error with a suggestion', () => {
  const ws = workspace({ 'dfwe.yaml': PIPE });
  assert.deepEqual(ran(dfwe(ws, ['--only', 'target=a', 'run', 'test'])), ['data', 'test[target=a]', 'train[lr=1]', 'train[lr=2]']);
  const bad = dfwe(ws, ['run', 'tset']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /dfwe\.yaml has no stage or node "tset"; did you mean "test"\?/);
  const order = dfwe(ws, ['run', 'data', 'dfwe.yaml']);
  assert.equal(order.code, 2);
  assert.match(order.stderr, /"dfwe\.yaml" looks like a pipeline file: give the pipeline first/);
});
