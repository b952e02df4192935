import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planMerge, writeMerge } from '../src/merge/engine.js';
import { mergeMethods } from '../src/merge/methods/index.js';
import { completeParams } from '../src/merge/params.js';
import { Rng } from '../src/ml/random.js';
import { REPO, workspace } from './helpers.js';

/*
 * dare_ties, della, breadcrumbs, model_stock and multislerp against their formulas computed
 * independently in numpy (test/fixtures/merge_reference.py, from the papers and mergekit's
 * code), on small random tensors: a matrix (rows matter to DELLA) and a vector.
 */

const PYTHON = process.env.DFWE_TORCH_PYTHON ?? '/usr/bin/python3';
const hasNumpy = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
if (!hasNumpy && process.env.DFWE_TEST_TORCH === 'required') throw new Error(`DFWE_TEST_TORCH=required but ${PYTHON} cannot import numpy`);

function save(path: string, tensors: Record<string, { shape: number[]; data: Float32Array }>): string {
  let offset = 0;
  const header: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer))]));
  return path;
}

test('the new merge methods match their formulas computed in numpy', { skip: hasNumpy ? false : `${PYTHON} has no numpy` }, async () => {
  const ws = workspace();
  const rng = new Rng('merge-reference');
  const shapes: Record<string, number[]> = { 'layer.weight': [13, 29], 'layer.bias': [37] };
  const make = (from?: Record<string, { shape: number[]; data: Float32Array }>, scale = 1) =>
    Object.fromEntries(Object.entries(shapes).map(([name, shape]) => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < data.length; i++) data[i] = (from ? from[name]!.data[i]! : 0) + (rng.next() - 0.5) * scale;
      return [name, { shape, data }];
    }));
  const base = make();
  const models = [0, 1, 2].map(() => make(base, 0.2));
  const basePath = save(join(ws, 'base.safetensors'), base);
  const paths = models.map((m, i) => save(join(ws, `m${i}.safetensors`), m));
  const cases: { method: string; params?: Record<string, unknown>; weights: number[]; base?: boolean; label: string }[] = [
    { method: 'dare_ties', weights: [1, 0.6, 0.8], label: 'defaults' },
    { method: 'dare_ties', params: { density: 0.3, normalize: true, lambda: 1.5, seed: 4 }, weights: [0.5, 1, 0.3], label: 'normalised' },
    { method: 'della', weights: [1, 0.6, 0.8], label: 'defaults' },
    { method: 'della', params: { density: 0.6, epsilon: 0.3, normalize: false, seed: 9 }, weights: [0.4, 1, 0.7], label: 'wide epsilon' },
    { method: 'breadcrumbs', weights: [1, 0.6, 0.8], label: 'defaults' },
    { method: 'breadcrumbs', params: { density: 0.5, gamma: 0.1, lambda: 0.7 }, weights: [0.3, 1, 0.5], label: 'half' },
    { method: 'model_stock', weights: [1 / 3, 1 / 3, 1 / 3], label: 'uniform' },
    { method: 'model_stock', weights: [0.2, 0.5, 0.3], label: 'weighted' },
    { method: 'multislerp', weights: [0.2, 0.5, 0.3], base: false, label: 'no base' },
    { method: 'multislerp', weights: [1, 2, 1], base: true, label: 'task vectors' },
  ];
  const jobs = [];
  for (const [n, c] of cases.entries()) {
    const method = mergeMethods.get(c.method)!;
    const params = { ...c.params };
    assert.deepEqual(completeParams(method, params), []);
    const withBase = c.base ?? method.needsBase;
    const plan = planMerge({ models: paths, base: withBase ? basePath : undefined, method, params });
    const out = join(ws, `out-${n}`);
    await writeMerge(plan, [c.weights], out);
    jobs.push({ method: c.method, label: c.label, params, weights: c.weights, models: paths, base: withBase ? basePath : undefined, out: join(out, 'm0.safetensors') });
  }
  const r = spawnSync(PYTHON, [join(REPO, 'test/fixtures/merge_reference.py')], { input: JSON.stringify(jobs), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { method: string; label: string; tensor: string; error: number; moved: number }[];
  assert.equal(report.length, cases.length * 2);
  for (const row of report) {
    // dfwe rounds its float64 result to float32 once: within a unit or so in the last place.
    assert.ok(row.error < 1e-6, `${row.method} (${row.label}), ${row.tensor}: off by ${row.error} (relative)`);
    assert.ok(row.moved > 1e-3, `${row.method} (${row.label}), ${row.tensor}: the merge is the first model`);
  }
});

test('della refuses an epsilon that takes a keep probability out of (0, 1]', () => {
  const della = mergeMethods.get('della')!;
  assert.match(completeParams(della, { density: 0.2, epsilon: 0.3 }).join(), /0 < density − epsilon and density \+ epsilon ≤ 1/);
  assert.deepEqual(completeParams(della, { density: 0.5, epsilon: 0.3 }), []);
});
