import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable, taskRows, type Pair } from '../src/report/metrics-table.js';

test('the sweep table gives, per task, the best and the mean delta over source sets, and an average row', () => {
  const pair = (task: string, method: number, baseline: number, s: string): Pair => ({ task, method: `m[${s}]`, baseline: 'b', vars: {}, methodScore: method, baselineScore: baseline, delta: method - baseline });
  const rows = taskRows([pair('emotion', 30, 25, 'a'), pair('emotion', 28, 25, 'b'), pair('qa', 60, 62, 'c')]);
  assert.deepEqual(rows.map((r) => [r.task, r.baseline, r.method, r.delta, r.meanDelta, r.pairs]), [['emotion', 25, 30, 5, 4, 2], ['qa', 62, 60, -2, -2, 1]]);
  const table = formatTable(rows);
  assert.match(table, /\| emotion +\| +25\.00 \| +30\.00 \| +\+5\.00 \| +\+4\.00 \| +2 \|/);
  assert.match(table, /\| qa +\| +62\.00 \| +60\.00 \| +-2\.00 \| +-2\.00 \| +1 \|/);
  assert.match(table, /\| average +\| +43\.50 \| +45\.00 \| +\+1\.50 \| +\+1\.00 \|/);
});
