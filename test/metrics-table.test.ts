import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable, taskRows, type Pair } from '../src/comparison.js';
import { dfwe, workspace, write } from './helpers.js';

test('the sweep table gives, per task, the best and the mean delta over source sets, and an average row', () => {
  const pair = (task: string, method: number, baseline: number, s: string): Pair => ({ task, method: `m[${s}]`, baseline: 'b', vars: {}, methodScore: method, baselineScore: baseline, delta: method - baseline });
  const rows = taskRows([pair('emotion', 30, 25, 'a'), pair('emotion', 28, 25, 'b'), pair('qa', 60, 62, 'c')]);
  assert.deepEqual(rows.map((r) => [r.task, r.baseline, r.method, r.delta, r.meanDelta, r.pairs]), [['emotion', 25, 30, 5, 4, 2], ['qa', 62, 60, -2, -2, 1]]);
  const table = formatTable(rows);
  assert.match(table, /\| emotion +\| +25\.00 \| +30\.00 \| +\+5\.00 \| +\+4\.00 \| +2 \|/);
  assert.match(table, /\| qa +\| +62\.00 \| +60\.00 \| +-2\.00 \| +-2\.00 \| +1 \|/);
  assert.match(table, /\| average +\| +43\.50 \| +45\.00 \| +\+1\.50 \| +\+1\.00 \|/);
});

test('metrics --stage lists every node of a stage with its vars and reported metrics', () => {
  const yaml = (scenes: string) => `version: 1
params: { scenes: [${scenes}] }
sweep: { scenes: "\${{ params.scenes }}" }
stages:
  data:
    uses: prepare-data
    with: { source: synthetic, seed: 1, scenes: "\${{ scenes }}", train: 5, dev: 5, test: 5, tasks: [topic] }
`;
  const ws = workspace({ 'dfwe.yaml': yaml('40, 60') });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', yaml('40, 60, 80'));
  const r = dfwe(ws, ['metrics', '--stage', 'data']);
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => l.split(/\s+/));
  assert.deepEqual(rows[0], ['scenes', 'dialogues']);
  assert.deepEqual(rows.slice(1).map((x) => x[0]), ['40', '60', '80']);
  assert.ok(Number(rows[1]![1]) > 0 && Number(rows[2]![1]) > 0, r.stdout);
  assert.equal(rows[3]!.slice(1).join(' '), '(not run)');
  const json = JSON.parse(dfwe(ws, ['metrics', '--stage', 'data', '--json']).stdout);
  assert.equal(json.nodes.length, 3);
  const bad = dfwe(ws, ['metrics', '--stage', 'dta']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no stage "dta"; did you mean "data"\?/);
});
