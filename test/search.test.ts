import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eigenSymmetric } from '../src/search/eigen.js';
import type { OptimizerName, Value } from '../src/search/optimizers.js';
import { search } from '../src/search/search.js';
import { CoefficientSpace, type Weights } from '../src/search/space.js';

const opts = (center: number[], maxEvals = 300) => ({ iterations: 200, maxEvals, step: 2, seed: 0, center });
const score = (f: (w: Weights) => number) => (w: Weights): Value => ({ score: f(w), loss: 0 });
const dist2 = (a: number[], b: number[]): number => a.reduce((s, x, i) => s + (x - b[i]!) ** 2, 0);

test('CMA-ES finds an optimum inside the simplex', async () => {
  const target = [0.2, 0.5, 0.3];
  const r = await search(new CoefficientSpace(1, 3, 'simplex'), 'cma-es', score(([a]) => -dist2(a!, target)), opts([1 / 3, 1 / 3, 1 / 3]));
  r.best.weights[0]!.forEach((x, i) => assert.ok(Math.abs(x - target[i]!) < 0.02, `α=${r.best.weights[0]!.map((v) => v.toFixed(3))}`));
  assert.ok(r.evaluations <= 300);
});

test('CMA-ES at a vertex: its own points close in on the vertex, which is the best point', async () => {
  const r = await search(new CoefficientSpace(1, 4, 'simplex'), 'cma-es', score(([a]) => 0.1 * a![0]! + 0.9 * a![1]! + 0.3 * a![2]! + 0.2 * a![3]!), opts([0.25, 0.25, 0.25, 0.25], 60));
  assert.deepEqual(r.best.weights, [[0, 1, 0, 0]]);
  // The vertices are evaluated before any optimizer runs, so the best point alone says nothing
  // about CMA-ES: the points it asked for must themselves approach the vertex.
  const own = r.trace.filter((t) => t.source === 'optimizer').map((t) => t.weights[0]![1]!);
  assert.ok(own.length >= 40, `${own.length} points from CMA-ES`);
  const late = own.slice(-10);
  assert.ok(Math.min(...late) > 0.97, `CMA-ES's last 10 points give the vertex's model α = ${late.map((x) => x.toFixed(3))}`);
});

test('task-vector weights range over [0, 1] each; CMA-ES and Nelder–Mead find a box optimum', async () => {
  for (const name of ['cma-es', 'nelder-mead'] as OptimizerName[]) {
    const target = [0.3, 0.8];
    const r = await search(new CoefficientSpace(1, 2, 'box'), name, score(([w]) => -dist2(w!, target)), opts([1, 1]));
    r.best.weights[0]!.forEach((x, i) => assert.ok(Math.abs(x - target[i]!) < 0.02, `${name}: w=${r.best.weights[0]}`));
    assert.ok(r.trace.every((t) => t.weights[0]!.every((x) => x >= 0 && x <= 1)), 'never outside the box');
  }
});

test('one set of weights per group: each group finds its own optimum', async () => {
  const targets = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]];
  for (const name of ['cma-es', 'nelder-mead'] as OptimizerName[]) {
    const r = await search(new CoefficientSpace(2, 3, 'simplex'), name, score((w) => -dist2(w[0]!, targets[0]!) - dist2(w[1]!, targets[1]!)), { ...opts([1 / 3, 1 / 3, 1 / 3], 1500), iterations: 600 });
    r.best.weights.forEach((g, i) => g.forEach((x, j) => assert.ok(Math.abs(x - targets[i]![j]!) < 0.03, `${name} group ${i}: ${g.map((v) => v.toFixed(3))}`)));
  }
});

test('CMA-ES is seeded: the same seed gives the same points, another seed others', async () => {
  const run = (seed: number) => search(new CoefficientSpace(1, 3, 'simplex'), 'cma-es', score(([a]) => -dist2(a!, [0.6, 0.3, 0.1])), { ...opts([1 / 3, 1 / 3, 1 / 3], 40), seed });
  const a = (await run(1)).trace.map((t) => t.weights);
  assert.deepEqual((await run(1)).trace.map((t) => t.weights), a);
  assert.notDeepEqual((await run(2)).trace.map((t) => t.weights), a);
});

test('eigenSymmetric decomposes a symmetric matrix: A v = λ v', () => {
  const m = [[4, 1, 0.5], [1, 3, 0.2], [0.5, 0.2, 1]];
  const { values, vectors } = eigenSymmetric(m);
  for (let c = 0; c < 3; c++) {
    const v = vectors.map((row) => row[c]!);
    const av = m.map((row) => row.reduce((s, x, j) => s + x * v[j]!, 0));
    av.forEach((x, i) => assert.ok(Math.abs(x - values[c]! * v[i]!) < 1e-9));
  }
  assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - 8) < 1e-9, 'the trace is kept');
});
