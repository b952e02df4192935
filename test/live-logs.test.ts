import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, dfweAsync, waitFor, workspace } from './helpers.js';

/*
 * A command stage's output while it runs (issue 24): `dfwe run -v` streams it with the node's
 * id, `dfwe show` on a running node says it is running (since when, its slot and GPU) with its
 * log so far, and `dfwe logs NODE -f` follows it to the end.
 */

test('dfwe run -v streams every line a command stage prints, prefixed with its node id', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  loud:\n    foreach: { n: [1, 2] }\n    cmd: echo "epoch ${{ n }}" && echo "loss 0.${{ n }}" >&2\n' });
  const r = dfwe(ws, ['run', '-v']);
  assert.equal(r.code, 0, r.stderr);
  for (const n of [1, 2]) {
    assert.match(r.stderr, new RegExp(`^ +loud\\[n=${n}\\]: epoch ${n}$`, 'm'));
    assert.match(r.stderr, new RegExp(`^ +loud\\[n=${n}\\]: loss 0\\.${n}$`, 'm'));
  }
  // Without -v the lines stay in the node's log.
  const quiet = dfwe(workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  loud:\n    cmd: echo "epoch 1"\n' }), ['run']);
  assert.doesNotMatch(quiet.stderr, /epoch 1/);
});

test('show on a running node says it runs, where, and its log so far; logs -f follows it to its end', async () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  train:
    cmd: >-
      echo "epoch 1 loss 0.9" && touch started &&
      for i in $(seq 400); do [ -e go ] && break; sleep 0.05; done &&
      echo "epoch 2 loss 0.4" && echo done > \${{ outs.m }}
    outs: { m: model.txt }
    resources: { gpu: 1 }
`,
  });
  const run = dfweAsync(ws, ['run'], { CUDA_VISIBLE_DEVICES: '3' });
  await waitFor(() => existsSync(join(ws, 'started')), 20_000, 'the stage to start');
  await waitFor(() => /state: +running/.test(dfwe(ws, ['show', 'train']).stdout), 10_000, 'show to see it running');
  const shown = dfwe(ws, ['show', 'train']).stdout;
  assert.match(shown, /state: +running since \d{4}-\d\d-\d\dT[\d:.]+Z \(pid \d+ on .+, slot 1, GPU 3\)/);
  assert.match(shown, /log so far:\n +\| epoch 1 loss 0\.9/);
  assert.doesNotMatch(shown.slice(shown.indexOf('log so far')), /epoch 2/);
  assert.equal(JSON.parse(dfwe(ws, ['show', '--json', 'train']).stdout).state, 'running');

  const follow = dfweAsync(ws, ['logs', 'train', '-f']);
  await waitFor(() => follow.output().includes('epoch 1 loss 0.9'), 10_000, 'logs -f to print the log so far');
  writeFileSync(join(ws, 'go'), '');
  const f = await follow.done;
  assert.equal(f.code, 0, f.stderr);
  assert.equal(f.stdout, 'epoch 1 loss 0.9\nepoch 2 loss 0.4\n');
  assert.match(f.stderr, /train finished/);
  assert.equal((await run.done).code, 0);

  // Ended: show says cached, and logs prints the stored log.
  assert.match(dfwe(ws, ['show', 'train']).stdout, /state: +cached/);
  assert.equal(dfwe(ws, ['logs', 'train']).stdout, 'epoch 1 loss 0.9\nepoch 2 loss 0.4\n');
});
