import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, REPO, safetensorsBytes, workspace, write } from './helpers.js';

/*
 * examples/dfwe_eval.py, the helper users copy beside their evaluator (issue 24): its loader
 * reads the three checkpoint layouts dfwe writes, as dfwe's own merge wrote them, and its
 * server loop answers once per request and fails loudly rather than answer wrongly.
 */

const PYTHON = process.env.DFWE_TORCH_PYTHON ?? '/usr/bin/python3';
const hasNumpy = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
const skip = hasNumpy ? false : process.env.DFWE_TEST_TORCH === 'required' ? false : `${PYTHON} has no numpy`;

function safetensors(path: string, tensors: Record<string, [dtype: 'F32' | 'BF16', values: number[]]>): void {
  writeFileSync(path, safetensorsBytes(tensors));
}

function python(ws: string, code: string, input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(PYTHON, ['-c', `import sys; sys.path.insert(0, ${JSON.stringify(join(REPO, 'examples'))})\n${code}`], { cwd: ws, input, encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const LOAD = (path: string): string => `from dfwe_eval import load_checkpoint\nimport json\nprint(json.dumps({k: v.tolist() for k, v in sorted(load_checkpoint(${JSON.stringify(path)}).items())}))`;

test('load_checkpoint reads a file, a single-file model\'s directory, a Hugging Face directory and shards, as dfwe\'s merge wrote them', { skip }, () => {
  const ws = workspace();
  safetensors(join(ws, 'a.safetensors'), { w: ['F32', [1, 2]], h: ['BF16', [1, 0.5]] });
  safetensors(join(ws, 'b.safetensors'), { w: ['F32', [3, 4]], h: ['BF16', [3, 1.5]] });
  for (const [dir, x] of [['hf_a', 1], ['hf_b', 3]] as const) {
    mkdirSync(join(ws, dir));
    write(ws, `${dir}/config.json`, '{"model_type": "toy"}');
    safetensors(join(ws, dir, 'model-00001-of-00002.safetensors'), { w: ['F32', [x, x]] });
    safetensors(join(ws, dir, 'model-00002-of-00002.safetensors'), { v: ['F32', [x]] });
    write(ws, `${dir}/model.safetensors.index.json`, JSON.stringify({ metadata: {}, weight_map: { w: 'model-00001-of-00002.safetensors', v: 'model-00002-of-00002.safetensors' } }));
  }
  write(ws, 'dfwe.yaml', `version: 1
stages:
  file:
    uses: merge
    with: { models: [a.safetensors, b.safetensors] }
    outs: { model: out/file }
  shards:
    uses: merge
    with: { models: [hf_a, hf_b] }
    outs: { model: out/shards }
`);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const read = (path: string): unknown => {
    const p = python(ws, LOAD(path));
    assert.equal(p.code, 0, p.stderr);
    return JSON.parse(p.stdout);
  };
  assert.deepEqual(read('a.safetensors'), { h: [1, 0.5], w: [1, 2] });
  // A single-file model's merge is a directory holding that one file.
  assert.deepEqual(read('out/file'), { h: [2, 1], w: [2, 3] });
  assert.deepEqual(read('out/shards'), { v: [2], w: [2, 2] });
  const bad = python(ws, LOAD('hf_a/missing'));
  assert.notEqual(bad.code, 0);
});

test('the server loop answers each request once, a number or a dict; an exception fails it with the traceback, never a wrong answer', { skip }, () => {
  const ws = workspace();
  const server = `from dfwe_eval import main
def score(path):
    if path == 'bad':
        raise ValueError('cannot read ' + path)
    return 7 if path == 'seven' else {'score': 1.5, 'loss': 0.25}
sys.argv = ['score.py', '--serve']
main(score)`;
  const ok = python(ws, server, '{"model": "seven", "candidate": 0}\n{"model": "x", "candidate": 1}\n');
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(ok.stdout.trim().split('\n').map((l) => JSON.parse(l)), [{ score: 7 }, { score: 1.5, loss: 0.25 }]);
  const failed = python(ws, server, '{"model": "x", "candidate": 0}\n{"model": "bad", "candidate": 1}\n{"model": "x", "candidate": 2}\n');
  assert.equal(failed.code, 1);
  assert.equal(failed.stdout.trim().split('\n').length, 1, 'no answer for the failed request or after it');
  assert.match(failed.stderr, /ValueError: cannot read bad/);
});
