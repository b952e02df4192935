import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, ran, read, REPO, workspace } from './helpers.js';

/*
 * The PyTorch example end to end (pipelines/torch.yaml): Python scripts train and finetune, save
 * safetensors with their own writer, and dfwe merges and searches α with their evaluator. CI
 * installs Debian's python3-torch and sets DFWE_TEST_TORCH=required, so there it cannot skip.
 */

const PYTHON = process.env.DFWE_TORCH_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;
if (!hasTorch && process.env.DFWE_TEST_TORCH === 'required') throw new Error(`DFWE_TEST_TORCH=required but ${PYTHON} cannot import torch and numpy`);

function exampleWorkspace(): string {
  const ws = workspace();
  mkdirSync(join(ws, 'pipelines'));
  cpSync(join(REPO, 'pipelines/torch.yaml'), join(ws, 'pipelines/torch.yaml'));
  cpSync(join(REPO, 'examples'), join(ws, 'examples'), { recursive: true });
  return ws;
}

test('the PyTorch example runs end to end; a rerun is cached; editing the scorer reruns the search and what reads it', { skip: hasTorch ? false : `${PYTHON} has no torch (apt-get install python3-torch)` }, () => {
  const ws = exampleWorkspace();
  const args = ['run', 'pipelines/torch.yaml', '--param', `python=${PYTHON}`];
  const r = dfwe(ws, args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(ran(r).length, 17);
  // The Python side found Σ αᵢ θᵢ in dfwe's merged checkpoint, with config.json copied.
  assert.match(read(ws, 'out/check/report'), /^merged = sum\(alpha_i theta_i\) for 6 tensors \(largest difference [\d.e-]+\); alpha = \[/);
  const search = JSON.parse(read(ws, 'out/dfwe/search'));
  assert.equal(search.evaluations, 60);
  assert.ok(search.score >= search.best_single_score, 'never worse on dev than the best single model');
  // The test evaluations are command stages with metrics files: the paper's table, the run
  // history's average delta and the report come from them, as from the built-in evaluate.
  const m = dfwe(ws, ['metrics', 'pipelines/torch.yaml', '--param', `python=${PYTHON}`, '--json']);
  assert.equal(m.code, 0, m.stderr);
  const [pair] = (JSON.parse(m.stdout) as { pairs: { task: string; baselineScore: number; methodScore: number; delta: number }[] }).pairs;
  const score = (stage: string): number => JSON.parse(read(ws, `out/${stage}/metrics`)).t0.score;
  assert.deepEqual(pair, { ...pair!, task: 't0', baselineScore: score('test_baseline'), methodScore: score('test_dfwe') });
  assert.match(dfwe(ws, ['metrics', 'pipelines/torch.yaml', '--param', `python=${PYTHON}`]).stdout, /^\| t0 +\| +[\d.]+ \| +[\d.]+ \| +[+-]?[\d.]+ \|$/m);
  const [run] = (JSON.parse(dfwe(ws, ['runs', '--json']).stdout) as { runs: { averageDelta: number }[] }).runs;
  assert.equal(run!.averageDelta, pair!.delta);
  assert.equal(dfwe(ws, ['report', 'pipelines/torch.yaml', '--param', `python=${PYTHON}`, '-o', 'r.html']).code, 0);
  assert.match(read(ws, 'r.html'), /<tr data-task="t0"><td>t0<\/td><td class="n">[\d.]+<\/td>/);

  assert.deepEqual(ran(dfwe(ws, args)), [], 'a rerun is all cached');

  appendFileSync(join(ws, 'examples/torch/score.py'), '# an edit of the scorer\n');
  const again = dfwe(ws, args);
  assert.equal(again.code, 0, again.stderr);
  // The search reruns and gives the same merge; its trace holds wall times, so the check that
  // reads the trace reruns too, while the test evaluation, which reads only the model, is cut off.
  assert.deepEqual(ran(again), ['check', 'dfwe']);
  // dfwe diff compares the two runs' metrics, the command stages' test scores among them.
  assert.match(dfwe(ws, ['diff', '--all']).stdout, /^test_dfwe: t0\.score +([\d.]+) +\1 +\+?0\.00$/m);

  // Two fresh runs give bit-identical checkpoints.
  const other = exampleWorkspace();
  assert.equal(dfwe(other, args).code, 0);
  for (const p of ['out/dfwe/model/model.safetensors', 'out/baseline/model/model.safetensors']) {
    assert.deepEqual(readFileSync(join(other, p)), readFileSync(join(ws, p)), p);
  }
});
