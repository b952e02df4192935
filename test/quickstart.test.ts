import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, ran, REPO, workspace, write } from './helpers.js';

test('the DFWE quickstart runs end to end, prints the table, reruns nothing, and an optimizer change reruns only interpolate', () => {
  const ws = workspace();
  const first = dfwe(ws, ['run']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(ran(first).length, 17);
  assert.match(first.stdout, /\| task +\| baseline \| +DFWE \| +delta \|\n\|-+\|-+:\|-+:\|-+:\|\n\| emotion \| +\d+\.\d\d \| +\d+\.\d\d \| +[+-]?\d+\.\d\d \|/);

  const search = JSON.parse(readFileSync(join(ws, 'out/interpolate/search'), 'utf8'));
  assert.equal(search.trace.filter((t: { source: string }) => t.source === 'vertex').length, 5, 'each finetuned model is evaluated alone');
  assert.ok(search.dev_score >= search.best_single_dev_score, 'never worse on dev than the best single model');
  assert.ok(Math.abs(search.alpha.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-9);

  const again = dfwe(ws, ['run']);
  assert.equal(again.code, 0);
  assert.deepEqual(ran(again), []);
  assert.match(again.stdout, /\| emotion \|/);

  const metrics = JSON.parse(dfwe(ws, ['metrics', '--json']).stdout);
  assert.equal(metrics.tasks[0].task, 'emotion');
  assert.equal(typeof metrics.tasks[0].delta, 'number');

  write(ws, 'dfwe.yaml', readFileSync(join(REPO, 'pipelines/quickstart.yaml'), 'utf8').replace('optimizer: nelder-mead', 'optimizer: uniform'));
  const changed = dfwe(ws, ['run']);
  assert.equal(changed.code, 0, changed.stderr);
  assert.deepEqual(ran(changed), ['interpolate', 'test_dfwe']);
});
