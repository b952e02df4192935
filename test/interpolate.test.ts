import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Merger } from '../src/ml/merge.js';
import type { Weights } from '../src/ml/model.js';
import { Rng } from '../src/ml/random.js';
import type { OptimizerName, Value } from '../src/search/optimizers.js';
import { search as searchIn, type Evaluated } from '../src/search/search.js';
import { CoefficientSpace, softmaxAlpha } from '../src/search/space.js';

type WithAlpha = Evaluated & { alpha: number[] };

/** A search over one group of k weights on the simplex, as interpolate runs it; each result's α is its one group. */
async function search(k: number, name: OptimizerName, f: (a: number[]) => Value, o: typeof opts): Promise<{ best: WithAlpha; trace: WithAlpha[]; evaluations: number }> {
  const r = await searchIn(new CoefficientSpace(1, k, 'simplex'), name, ([a]) => f(a!), { ...o, center: new Array(k).fill(1 / k) });
  const withAlpha = (t: Evaluated): WithAlpha => ({ ...t, alpha: t.weights[0]! });
  return { best: withAlpha(r.best), trace: r.trace.map(withAlpha), evaluations: r.evaluations };
}

const opts = { iterations: 40, maxEvals: 200, step: 2, seed: 0 };
const valueOf = (f: (a: number[]) => number) => (a: number[]): Value => ({ score: f(a), loss: 0 });

test('Nelder–Mead finds an optimum inside the simplex', async () => {
  const target = [0.5, 0.3, 0.2];
  const r = await search(3, 'nelder-mead', valueOf((a) => -a.reduce((s, x, i) => s + (x - target[i]!) ** 2, 0)), opts);
  r.best.alpha.forEach((x, i) => assert.ok(Math.abs(x - target[i]!) < 0.02, `α=${r.best.alpha.map((v) => v.toFixed(3))} is not near ${target}`));
  assert.ok(Math.abs(r.best.alpha.reduce((a, b) => a + b, 0) - 1) < 1e-12, 'α sums to 1');
  assert.ok(r.best.alpha.every((x) => x >= 0));
});

test('an optimum at a vertex is found exactly (the vertices are always evaluated)', async () => {
  const r = await search(4, 'nelder-mead', valueOf((a) => 0.1 * a[0]! + 0.9 * a[1]! + 0.3 * a[2]! + 0.2 * a[3]!), opts);
  assert.deepEqual(r.best.alpha, [0, 1, 0, 0]);
  assert.equal(r.trace.filter((t) => t.source === 'vertex').length, 4);
  // Never worse on dev than the best single model, whatever the optimizer.
  for (const name of ['uniform', 'random', 'greedy-soup', 'cma-es'] as const) {
    const s = await search(4, name, valueOf((a) => 0.1 * a[0]! + 0.9 * a[1]! + 0.3 * a[2]! + 0.2 * a[3]!), opts);
    assert.ok(s.best.value.score >= 0.9, name);
  }
});

test('ties in dev score are broken by dev loss; the evaluation cap is kept; points are cached', async () => {
  const r = await search(3, 'nelder-mead', (a) => ({ score: 1, loss: (a[0]! - 0.2) ** 2 + (a[1]! - 0.7) ** 2 }), opts);
  assert.ok(Math.abs(r.best.alpha[1]! - 0.7) < 0.05, `α=${r.best.alpha}`);
  const capped = await search(5, 'nelder-mead', valueOf((a) => -Math.abs(a[0]! - 0.3)), { ...opts, maxEvals: 12 });
  assert.ok(capped.evaluations <= 12);
  const keys = capped.trace.map((t) => t.alpha.map((x) => x.toFixed(9)).join());
  assert.equal(new Set(keys).size, keys.length, 'no point evaluated twice');
  assert.equal((await search(3, 'uniform', valueOf(() => 0), opts)).evaluations, 4);
  assert.equal((await search(3, 'random', valueOf(() => 0), { ...opts, maxEvals: 20 })).evaluations, 20);
});

test('greedy soup adds models in order of their own score while the soup does not get worse', async () => {
  // Models 2 and 0 are good together; model 1 hurts.
  const f = (a: number[]): number => a[2]! * 1 + a[0]! * 0.8 - a[1]! * 2 + (a[0]! > 0 && a[2]! > 0 ? 0.5 : 0);
  const r = await search(3, 'greedy-soup', valueOf(f), opts);
  assert.deepEqual(r.best.alpha.map((x) => +x.toFixed(3)), [0.5, 0, 0.5]);
});

test('the softmax parametrisation keeps one logit fixed: z = 0 is uniform', () => {
  assert.deepEqual(softmaxAlpha([0, 0, 0]), [0.25, 0.25, 0.25, 0.25]);
});

function weights(seed: number, shapes: Record<string, number[]>): Weights {
  const r = new Rng(seed);
  return new Map(Object.entries(shapes).map(([k, shape]) => [k, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal()) }]));
}

test('merging identical models returns identical bytes', () => {
  const m = weights(1, { 'embed.tokens': [50, 8], 'encoder.w0': [8, 16], 'head.t.w': [48, 7] });
  for (const alpha of [[1 / 3, 1 / 3, 1 / 3], [0.2, 0.5, 0.3], [0.1234, 0.0001, 0.8765]]) {
    const merged = new Merger([m, m, m], () => true).merge(alpha);
    for (const [k, t] of m) assert.deepEqual(Buffer.from(merged.get(k)!.data.buffer), Buffer.from(t.data.buffer), `${k} at α=${alpha}`);
  }
  const a = weights(2, { w: [3] });
  const b = weights(3, { w: [3] });
  const mid = new Merger([a, b], () => true).merge([0.25, 0.75]).get('w')!.data;
  mid.forEach((x, i) => assert.ok(Math.abs(x - (0.25 * a.get('w')!.data[i]! + 0.75 * b.get('w')!.data[i]!)) < 1e-6));
});

test('models of different architectures are rejected, naming the model and the tensor', () => {
  const a = weights(1, { 'encoder.w0': [8, 16], 'head.t.w': [48, 7] });
  assert.throws(() => new Merger([a, weights(2, { 'encoder.w0': [8, 12], 'head.t.w': [48, 7] })], () => true, ['m1', 'm2']), /m2: tensor "encoder.w0" has shape \[8,12\], m1 has \[8,16\]/);
  assert.throws(() => new Merger([a, weights(2, { 'encoder.w0': [8, 16] })], () => true, ['m1', 'm2']), /m2 has no tensor "head.t.w"/);
  assert.throws(() => new Merger([a, weights(2, { 'encoder.w0': [8, 16], 'head.t.w': [48, 7], extra: [1] })], () => true, ['m1', 'm2']), /m2 has tensors m1 lacks \(extra\)/);
  // Heads of other tasks are not merged, so experts with different source heads still combine.
  const ok = new Merger([a, weights(3, { 'encoder.w0': [8, 16], 'head.t.w': [48, 7], 'head.s.w': [48, 3] })], (n) => !n.startsWith('head.') || n.startsWith('head.t.'));
  assert.deepEqual(ok.tensorNames, ['encoder.w0', 'head.t.w']);
});
