import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gpuDevices } from '../src/engine/run-options.js';
import { dfwe, read, workspace } from './helpers.js';

/*
 * GPU pinning (issue 24): each node holding gpu tokens is given distinct devices through
 * CUDA_VISIBLE_DEVICES, taken from the GPUs this run sees (an outer CUDA_VISIBLE_DEVICES
 * included). The stages wait for each other so that they provably run at once.
 */

/** `n` stages of `gpus` tokens each; each writes the devices it saw once all of them have started. */
function pinned(n: number, gpus: number): string {
  const stages = Array.from({ length: n }, (_, i) => `  g${i}:
    cmd: >-
      mkdir -p started && touch started/g${i} &&
      for t in $(seq 200); do [ $(ls started | wc -l) -ge ${n} ] && break; sleep 0.05; done &&
      echo "$CUDA_VISIBLE_DEVICES" > \${{ outs.o }}
    outs: { o: ~ }
    resources: { gpu: ${gpus} }`);
  return `version: 1\nstages:\n${stages.join('\n')}\n  cpu_only:\n    cmd: echo "\${CUDA_VISIBLE_DEVICES-unset}" > \${{ outs.o }}\n    outs: { o: ~ }\n`;
}

const seen = (ws: string, n: number): string[] => Array.from({ length: n }, (_, i) => read(ws, `out/g${i}/o`).trim());

test('four gpu: 1 stages at once under CUDA_VISIBLE_DEVICES=0,1,2,3 each see one distinct device; the record, show and history say which', () => {
  const ws = workspace({ 'dfwe.yaml': pinned(4, 1) });
  const r = dfwe(ws, ['run', '-j5'], { CUDA_VISIBLE_DEVICES: '0,1,2,3' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen(ws, 4).sort(), ['0', '1', '2', '3']);
  // A stage that holds no gpu token is left as it was (its environment's CUDA_VISIBLE_DEVICES).
  assert.equal(read(ws, 'out/cpu_only/o').trim(), '0,1,2,3');
  const shown = JSON.parse(dfwe(ws, ['show', '--json', 'g0']).stdout);
  assert.deepEqual(shown.record.gpus, [read(ws, 'out/g0/o').trim()]);
  assert.match(dfwe(ws, ['show', 'g0']).stdout, /ran: .* \(GPU \d\)/);
  const runs = (JSON.parse(dfwe(ws, ['runs', '--json']).stdout) as { runs: { executed: { id: string; gpus?: string[] }[] }[] }).runs;
  assert.deepEqual(runs[0]!.executed.filter((e) => e.gpus).map((e) => e.gpus!.length), [1, 1, 1, 1]);
});

test('gpu: 2 stages get two devices each, from an outer CUDA_VISIBLE_DEVICES of other ids', () => {
  const ws = workspace({ 'dfwe.yaml': pinned(2, 2) });
  const r = dfwe(ws, ['run', '-j3'], { CUDA_VISIBLE_DEVICES: '4,5,6,7' });
  assert.equal(r.code, 0, r.stderr);
  const both = seen(ws, 2);
  assert.deepEqual(both.map((s) => s.split(',').length), [2, 2]);
  assert.deepEqual(both.flatMap((s) => s.split(',')).sort(), ['4', '5', '6', '7']);
});

test('more gpu tokens than GPUs (--resource gpu=4 on two) share the devices in turn; with none visible, tokens are device indices', () => {
  const ws = workspace({ 'dfwe.yaml': pinned(4, 1) });
  const r = dfwe(ws, ['run', '-j5', '--resource', 'gpu=4'], { CUDA_VISIBLE_DEVICES: '0,1' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen(ws, 4).sort(), ['0', '0', '1', '1']);
  assert.deepEqual(gpuDevices(3, []), ['0', '1', '2']);
  assert.deepEqual(gpuDevices(3, ['GPU-a', 'GPU-b']), ['GPU-a', 'GPU-b', 'GPU-a']);
});
