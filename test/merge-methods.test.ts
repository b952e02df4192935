import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planMerge, writeMerge } from '../src/merge/engine.js';
import { mergeMethods } from '../src/merge/methods/index.js';
import { kthLargest } from '../src/merge/select.js';
import { dfwe, read, workspace } from './helpers.js';

/** One-tensor-or-more F32 checkpoint, written from the format's description. */
function save(path: string, tensors: Record<string, number[]>): string {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, v] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: [v.length], data_offsets: [offset, offset + 4 * v.length] };
    offset += 4 * v.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...Object.values(tensors).map((v) => Buffer.from(new Float32Array(v).buffer))]));
  return path;
}

function load(path: string): Record<string, number[]> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString()) as Record<string, { data_offsets: [number, number] }>;
  return Object.fromEntries(Object.entries(header).filter(([k]) => k !== '__metadata__').map(([k, h]) => [k, [...new Float32Array(new Uint8Array(buf.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1])).buffer)]]));
}

async function merge(name: string, models: Record<string, number[]>[], opts: { base?: Record<string, number[]>; weights?: number[][]; params?: Record<string, unknown>; groups?: string[]; include?: string[]; exclude?: string[] } = {}): Promise<Record<string, number[]>> {
  const ws = workspace();
  const method = mergeMethods.get(name)!;
  const paths = models.map((m, i) => save(join(ws, `m${i}.safetensors`), m));
  const base = opts.base ? save(join(ws, 'base.safetensors'), opts.base) : undefined;
  // Parameters as a pipeline gives them: the method's defaults, then what the test says.
  const defaults = Object.fromEntries(Object.entries((method.schema as { properties: Record<string, { default?: unknown }> }).properties).map(([k, p]) => [k, p.default]));
  const plan = planMerge({ models: paths, base, method, params: { ...defaults, ...opts.params }, groups: opts.groups, include: opts.include, exclude: opts.exclude });
  await writeMerge(plan, opts.weights ?? plan.groupNames.map(() => method.defaultWeights(models.length)), join(ws, 'out'));
  return load(join(ws, 'out', 'm0.safetensors'));
}

const close = (actual: number[], expected: number[], what = ''): void => {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) < 1e-6, `${what}[${i}]: ${a} ≠ ${expected[i]}`));
};

test('linear: Σ wᵢθᵢ / Σ wᵢ, by hand', async () => {
  close((await merge('linear', [{ w: [1, 2, 3, 4] }, { w: [3, 2, 1, 0] }], { weights: [[0.25, 0.75]] })).w!, [2.5, 2, 1.5, 1]);
  close((await merge('linear', [{ w: [1, 2] }, { w: [3, 4] }], { weights: [[1, 3]] })).w!, [2.5, 3.5], 'normalised');
  close((await merge('linear', [{ w: [1, 2] }, { w: [3, 4] }], { weights: [[1, 3]], params: { normalize: false } })).w!, [10, 14], 'as given');
});

test('task_arithmetic: base + λ Σ wᵢ(θᵢ − base), by hand', async () => {
  const base = { w: [1, 1, 1, 1] };
  // task vectors [1, 0, −1, 0] and [0, 2, 0, 0]
  close((await merge('task_arithmetic', [{ w: [2, 1, 0, 1] }, { w: [1, 3, 1, 1] }], { base, weights: [[1, 0.5]] })).w!, [2, 2, 0, 1]);
  close((await merge('task_arithmetic', [{ w: [2, 1, 0, 1] }, { w: [1, 3, 1, 1] }], { base, weights: [[1, 0.5]], params: { lambda: 2 } })).w!, [3, 3, -1, 1]);
});

test('ties: trim to density, elect a sign, average what agrees, by hand', async () => {
  const base = { w: [0, 0, 0, 0] };
  // τ₁ = [3, −1, 0.5, −2] keeps [3, ·, ·, −2]; τ₂ = [−1, 2, 0.4, −3] keeps [·, 2, ·, −3].
  // Elected signs +, +, none, −: element 3 averages −2 and −3.
  close((await merge('ties', [{ w: [3, -1, 0.5, -2] }, { w: [-1, 2, 0.4, -3] }], { base, params: { density: 0.5 } })).w!, [3, 2, 0, -2.5]);
  // Weights count in the election and in the mean. τ₁ = [3, 0, 0, −2] keeps [3, ·, ·, −2];
  // τ₂ = [−4, 0, 0, −1] keeps [−4, ·, ·, −1]. With weights 1 and 3: elect[0] = 3 − 12 < 0, so
  // only τ₂ counts there (−4); elect[3] < 0 and both agree: (1·(−2) + 3·(−1)) / (1 + 3) = −1.25.
  close((await merge('ties', [{ w: [3, 0, 0, -2] }, { w: [-4, 0, 0, -1] }], { base, params: { density: 0.5 }, weights: [[1, 3]] })).w!, [-4, 0, 0, -1.25]);
});

test('dare: density 1 is task arithmetic; otherwise entries dropped at that rate and the rest rescaled, seeded', async () => {
  const base = { w: [1, 1, 1, 1] };
  close((await merge('dare', [{ w: [2, 1, 0, 1] }, { w: [1, 3, 1, 1] }], { base, weights: [[1, 0.5]], params: { density: 1 } })).w!, [2, 2, 0, 1]);
  const n = 20_000;
  const big = { w: new Array(n).fill(0) };
  const ones = { w: new Array(n).fill(1) };
  const a = (await merge('dare', [ones], { base: big, weights: [[1]], params: { density: 0.3, seed: 7 } })).w!;
  const kept = a.filter((x) => x !== 0);
  assert.ok(kept.every((x) => Math.abs(x - 1 / 0.3) < 1e-5), 'kept entries are rescaled by 1/density');
  assert.ok(Math.abs(kept.length / n - 0.3) < 0.015, `kept ${kept.length} of ${n}`);
  assert.deepEqual((await merge('dare', [ones], { base: big, weights: [[1]], params: { density: 0.3, seed: 7 } })).w, a, 'same seed, same drops');
  assert.notDeepEqual((await merge('dare', [ones], { base: big, weights: [[1]], params: { density: 0.3, seed: 8 } })).w, a, 'another seed, other drops');
});

test('slerp: along the great circle, and straight when the models are parallel', async () => {
  close((await merge('slerp', [{ w: [1, 0] }, { w: [0, 1] }])).w!, [Math.SQRT1_2, Math.SQRT1_2], 't = 0.5 of a right angle');
  close((await merge('slerp', [{ w: [2, 0] }, { w: [0, 2] }], { weights: [[2, 1]] })).w!, [2 * Math.cos(Math.PI / 6), 2 * Math.sin(Math.PI / 6)], 't = 1/3');
  close((await merge('slerp', [{ w: [1, 1] }, { w: [2, 2] }])).w!, [1.5, 1.5], 'parallel: a straight line');
  await assert.rejects(merge('slerp', [{ w: [1] }, { w: [1] }, { w: [1] }]), /slerp merges exactly 2 models, not 3 \(multislerp interpolates any number/);
});

test('include, exclude and per-group weights choose what is merged and how', async () => {
  const a = { 'enc.0': [1, 1], 'enc.1': [1, 1], 'head.emotion': [1, 1] };
  const b = { 'enc.0': [3, 3], 'enc.1': [3, 3], 'head.emotion': [3, 3] };
  const kept = (await merge('linear', [a, b], { exclude: ['head.*'] }));
  close(kept['enc.0']!, [2, 2]);
  close(kept['head.emotion']!, [1, 1], 'excluded: the first model\'s');
  const grouped = (await merge('linear', [a, b], { groups: ['enc.0'], weights: [[1, 0], [0, 1]] }));
  close(grouped['enc.0']!, [1, 1], 'group enc.0');
  close(grouped['enc.1']!, [3, 3], 'the other tensors');
  close((await merge('linear', [a, b], { include: ['enc.*'], groups: ['*.1'], weights: [[0, 1], [0.5, 0.5]] }))['enc.1']!, [3, 3]);
});

test('kthLargest finds order statistics, duplicates included', async () => {
  const xs = Float32Array.from({ length: 1001 }, (_, i) => (i * 7919) % 1001);
  for (const k of [1, 2, 500, 1001]) assert.equal(kthLargest(Float32Array.from(xs), k), 1001 - k);
  assert.equal(kthLargest(new Float32Array([2, 2, 2, 1]), 3), 2);
});

test("dfwe's own models are one case of the same machinery: merge averages them, and evaluate loads the result", async () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  data: { uses: prepare-data, with: { source: synthetic, seed: 1, scenes: 60, train: 30, dev: 20, test: 20, tasks: [emotion, sentiment] } }
  vocab: { uses: vocab, with: { data: "\${{ stages.data.outs.data }}" } }
  base: { uses: init-model, with: { vocab: "\${{ stages.vocab.outs.vocab }}", embed_dim: 8, hidden: 8 } }
  expert:
    foreach: { tasks: [[emotion], [emotion, sentiment]] }
    uses: train-expert
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.base.outs.model }}", tasks: "\${{ tasks }}", epochs: 1 }
  finetune:
    foreach: { tasks: [[emotion], [emotion, sentiment]] }
    uses: finetune
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.expert.outs.model }}", task: emotion, epochs: 1 }
  merged:
    uses: merge
    with: { models: "\${{ stages.finetune.outs.model }}", include: ["embed.*", "encoder.*", "head.emotion.*"] }
  score:
    uses: evaluate
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.merged.outs.model }}", tasks: [emotion] }
`,
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const [a, b] = ['emotion', 'emotion+sentiment'].map((t) => load(join(ws, `out/finetune/tasks=${t}/model/weights.safetensors`)));
  const merged = load(join(ws, 'out/merged/model/weights.safetensors'));
  assert.deepEqual(Object.keys(merged).sort(), Object.keys(a!).sort());
  for (const [name, values] of Object.entries(merged)) close(values, a![name]!.map((x, i) => (x + b![name]![i]!) / 2), name);
  assert.ok(Object.keys(merged).some((n) => n.startsWith('head.sentiment.')) === false, "the first model's layout: it has no sentiment head");
  assert.match(read(ws, 'out/score/metrics'), /"emotion"/);
});
