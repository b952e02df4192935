import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registry } from '../stages/index.js';
import { dfwe, listFiles, ran, REPO, workspace, write } from './helpers.js';

const DATA = `version: 1
stages:
  data:
    uses: prepare-data
    with: { source: synthetic, seed: 3, scenes: 200, train: 40, dev: 20, test: 20 }
  count:
    cmd: wc -l < \${{ stages.data.outs.data }}/emotion.train.jsonl > out/count.txt
    outs: { n: out/count.txt }
`;

test('a built-in stage runs through dfwe exec, is cached, and is deterministic across workspaces', () => {
  const a = workspace({ 'dfwe.yaml': DATA });
  const b = workspace({ 'dfwe.yaml': DATA });
  const ra = dfwe(a, ['run']);
  assert.equal(ra.code, 0, ra.stderr);
  assert.deepEqual(ran(ra), ['count', 'data']);
  assert.equal(readFileSync(join(a, 'out/count.txt'), 'utf8').trim(), '40');
  assert.ok(listFiles(join(a, 'out/data/data')).includes('dataset.json'));
  assert.deepEqual(ran(dfwe(a, ['run'])), []);
  assert.equal(dfwe(b, ['run']).code, 0);
  const digest = (ws: string): string => JSON.parse(dfwe(ws, ['show', 'data', '--json']).stdout).record.outputs.data.digest;
  assert.equal(digest(a), digest(b));
  const show = dfwe(a, ['show', 'data']);
  assert.match(show.stdout, /\(prepare-data\)/);
  assert.match(show.stdout, /emotion: 40 train, 20 dev, 20 test/);
  assert.match(show.stdout, /dialogues: \d+/);
});

test("editing a built-in stage's parameter: why names it, and the run redoes it and its consumers", () => {
  const ws = workspace({ 'dfwe.yaml': DATA });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', DATA.replace('seed: 3', 'seed: 4'));
  assert.match(dfwe(ws, ['why', 'data']).stdout, /with seed changed[\s\S]*before: 3\n\s+now:\s+4/);
  const r = dfwe(ws, ['run']);
  assert.deepEqual(ran(r), ['count', 'data']);
});

test("a built-in stage's parameters are checked against its schema, located, with did-you-mean", () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  data:\n    uses: prepare-data\n    with: { source: synthetc, seeed: 1, scenes: many }\n' });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 2, r.stderr);
  const located = r.stderr.split('\n').filter((l) => l.startsWith('dfwe.yaml:'));
  assert.deepEqual(located, [
    'dfwe.yaml:5:21: error: "with.source" of stage "data": "synthetc" is not one of synthetic, friends, tlidb; did you mean "synthetic"?',
    'dfwe.yaml:5:31: error: unknown key "seeed" in "with" of stage "data"; did you mean "seed"?',
    'dfwe.yaml:5:49: error: "with.scenes" of stage "data" must be integer, not string',
  ]);
  assert.doesNotMatch(r.stderr, /must match "then"/);
  const t = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  data:\n    uses: prepare-dat\n' });
  assert.match(dfwe(t, ['run']).stderr, /dfwe\.yaml:4:11: error: "uses" of stage "data": "prepare-dat" is not one of .*; did you mean "prepare-data"\?/);
  const o = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  data:\n    uses: prepare-data\n    with: { source: synthetic }\n    outs: { dta: x }\n' });
  assert.match(dfwe(o, ['run']).stderr, /dfwe\.yaml:6:13: error: stage type "prepare-data" has no output "dta"; did you mean "data"\?/);
});

test('dfwe exec runs a node spec by hand: the contract other executors rely on', () => {
  const ws = workspace();
  const spec = {
    format: 1, nodeId: 'data', type: 'prepare-data', version: registry.get('prepare-data')!.version, workspace: ws,
    params: { source: 'synthetic', seed: 1, scenes: 50, train: 5, dev: 5, test: 5, tasks: ['topic'] },
    outs: { data: join(ws, 'ds') }, outKinds: { data: 'dir' }, metricsPath: join(ws, 'metrics.json'),
  };
  writeFileSync(join(ws, 'spec.json'), JSON.stringify(spec));
  const r = dfwe(ws, ['exec', 'spec.json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(listFiles(join(ws, 'ds')), ['corpus.txt', 'dataset.json', 'dialogues.jsonl', 'topic.dev.jsonl', 'topic.test.jsonl', 'topic.train.jsonl']);
  assert.ok(JSON.parse(readFileSync(join(ws, 'metrics.json'), 'utf8')).dialogues > 0);
  const stale = dfwe(ws, ['exec', 'nope.json']);
  assert.equal(stale.code, 2);
});

test('schemas/pipeline.schema.json is what `dfwe schema` generates (regenerate with npm run schema)', () => {
  const committed = readFileSync(join(REPO, 'schemas/pipeline.schema.json'), 'utf8');
  assert.equal(dfwe(REPO, ['schema']).stdout, committed);
});
