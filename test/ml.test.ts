import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { majorityScore } from '../src/ml/baseline.js';
import { readDataset, writeDataset } from '../src/ml/data/dataset-io.js';
import { generateSynthetic } from '../src/ml/data/synthetic.js';
import { encode, spanPositions } from '../src/ml/encode.js';
import type { Span } from '../src/ml/data/types.js';
import { disposeBatch, forward, initEncoder, initHead, makeBatch, type ModelConfig } from '../src/ml/model.js';
import { readSafetensors } from '../src/ml/safetensors.js';
import { loadTf } from '../src/ml/tf.js';
import { ensureHeads, evaluate, toVars, train } from '../src/ml/train.js';
import { buildVocab } from '../src/ml/vocab.js';
import { dfwe, ran, workspace } from './helpers.js';
import { untrainedModel } from './ml-helpers.js';

function smallDataset(train = 300): string {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-ml-'));
  const { tasks, dialogues, examples } = generateSynthetic({ seed: 1, scenes: 700, sizes: { train, dev: 100, test: 150 } });
  writeDataset(dir, 'synthetic', tasks, dialogues, examples, {});
  return dir;
}

test('wasm gradients (embedding gather, transposed matmuls, shifted-matmul CNN, every head kind) match the cpu backend', async () => {
  const tf = await loadTf('wasm');
  const ds = readDataset(smallDataset(40));
  const vocab = buildVocab(ds, 500, 1);
  const m = untrainedModel(ds, vocab, 48);
  const { cfg } = m;
  const gradsOn = async (backend: string): Promise<Map<string, Float32Array>> => {
    await tf.setBackend(backend);
    const vars = toVars(tf, m.weights);
    const out = new Map<string, Float32Array>();
    for (const task of Object.keys(ds.manifest.tasks)) {
      const exs = ds.examples(task, 'train').slice(0, 6);
      const batch = makeBatch(tf, exs.map((e) => encode(e, ds.dialogues.get(e.dialogue)!, vocab, cfg.maxLen)), cfg.maxLen);
      const { grads } = tf.variableGrads(() => tf.sum(tf.addN(forward(tf, cfg, vars, task, batch).map((o) => tf.sum(tf.mul(tf.clipByValue(o, -50, 50), tf.sin(tf.range(0, o.size).reshape(o.shape))))))) as never);
      for (const [k, g] of Object.entries(grads)) out.set(`${task}:${k}`, Float32Array.from(g.dataSync() as Float32Array));
      disposeBatch(batch);
    }
    vars.forEach((v) => v.dispose());
    return out;
  };
  const wasm = await gradsOn('wasm');
  const cpu = await gradsOn('cpu');
  await tf.setBackend('wasm');
  assert.ok(wasm.size > 20);
  let worst = 0;
  for (const [k, g] of wasm) {
    const c = cpu.get(k)!;
    const scale = Math.max(1e-3, ...c.map(Math.abs));
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i]! - c[i]!) / scale);
  }
  assert.ok(worst < 1e-4, `largest relative gradient difference ${worst}`);
  assert.ok([...wasm.keys()].some((k) => k.endsWith('embed.tokens')), 'the embedding has a gradient');
});

test('a model trained on the synthetic corpus beats the majority class on every task', async () => {
  const tf = await loadTf('wasm');
  const ds = readDataset(smallDataset());
  const vocab = buildVocab(ds, 2000, 1);
  const report: string[] = [];
  for (const task of Object.keys(ds.manifest.tasks)) {
    const cfg: ModelConfig = { encoder: 'cnn', vocabSize: vocab.tokens.length, embedDim: 32, hidden: 48, kernel: 3, maxLen: 96, seed: 0, tasks: {} };
    const m = { cfg, weights: initEncoder(cfg), vocab: '' };
    const r = train(tf, m, ds, vocab, { tasks: [task], target: task, epochs: 6, lr: 0.01, batchSize: 32, seed: 0, mixing: 'size', temperature: 1, patience: 3 }, () => {});
    const vars = toVars(tf, r.weights);
    const score = evaluate(tf, m.cfg, vars, ds, vocab, task, 'test').score;
    vars.forEach((v) => v.dispose());
    const base = majorityScore(ds, task);
    report.push(`${task}: ${score.toFixed(1)} vs majority ${base.toFixed(1)}`);
    assert.ok(score > base + 5, `${task}: ${score.toFixed(1)} does not clearly beat the majority baseline ${base.toFixed(1)}\n${report.join('\n')}`);
  }
});

test('the transformer encoder (for GPU users) trains, and its gradients on wasm match cpu', async () => {
  const tf = await loadTf('wasm');
  const ds = readDataset(smallDataset(64));
  const vocab = buildVocab(ds, 500, 1);
  const cfg: ModelConfig = { encoder: 'transformer', vocabSize: vocab.tokens.length, embedDim: 8, hidden: 16, kernel: 1, layers: 1, heads: 2, maxLen: 32, seed: 1, tasks: {} };
  const m = { cfg, weights: initEncoder(cfg), vocab: '' };
  ensureHeads(m, [ds.manifest.tasks.sentiment!]);
  const grads = async (backend: string): Promise<Float32Array[]> => {
    await tf.setBackend(backend);
    const vars = toVars(tf, m.weights);
    const exs = ds.examples('sentiment', 'train').slice(0, 4);
    const batch = makeBatch(tf, exs.map((e) => encode(e, ds.dialogues.get(e.dialogue)!, vocab, cfg.maxLen)), cfg.maxLen);
    const { grads: g } = tf.variableGrads(() => tf.sum(tf.mul(forward(tf, cfg, vars, 'sentiment', batch)[0]!, tf.tensor2d([[1, -2, 3]]))) as never);
    const out = Object.keys(g).sort().map((k) => Float32Array.from(g[k]!.dataSync() as Float32Array));
    disposeBatch(batch);
    vars.forEach((x) => x.dispose());
    return out;
  };
  const w = await grads('wasm');
  const c = await grads('cpu');
  await tf.setBackend('wasm');
  w.forEach((g, i) => g.forEach((x, j) => assert.ok(Math.abs(x - c[i]![j]!) <= 1e-4 * Math.max(1, Math.abs(c[i]![j]!)), `gradient ${i}[${j}]: ${x} vs ${c[i]![j]}`)));
  const r = train(tf, m, ds, vocab, { tasks: ['sentiment'], epochs: 3, lr: 0.01, batchSize: 16, seed: 0, mixing: 'size', temperature: 1, patience: 3 }, () => {});
  assert.ok(r.history[2]!.loss < r.history[0]!.loss, `loss did not fall: ${r.history.map((h) => h.loss.toFixed(3)).join(' ')}`);
});

test('a head the model lacks is initialised deterministically from seed and task', () => {
  const cfg: ModelConfig = { encoder: 'bow', vocabSize: 10, embedDim: 4, hidden: 6, kernel: 1, maxLen: 16, seed: 9, tasks: { emotion: { kind: 'single', labels: ['a', 'b'] } } };
  assert.deepEqual(initHead(cfg, 'emotion'), initHead(cfg, 'emotion'));
  assert.notDeepEqual(initHead({ ...cfg, seed: 10 }, 'emotion').get('head.emotion.w')!.data, initHead(cfg, 'emotion').get('head.emotion.w')!.data);
});

const PIPELINE = `version: 1
runtime: { backend: wasm }
stages:
  data:
    uses: prepare-data
    with: { source: synthetic, seed: 2, scenes: 300, train: 60, dev: 30, test: 30, tasks: [emotion, sentiment] }
  vocab:
    uses: vocab
    with: { data: "\${{ stages.data.outs.data }}" }
  base:
    uses: init-model
    with: { vocab: "\${{ stages.vocab.outs.vocab }}", hidden: 16, embed_dim: 8, max_len: 64 }
  expert:
    uses: train-expert
    with:
      data: \${{ stages.data.outs.data }}
      vocab: \${{ stages.vocab.outs.vocab }}
      model: \${{ stages.base.outs.model }}
      tasks: [emotion, sentiment]
      target: emotion
      epochs: 2
  tuned:
    uses: finetune
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.expert.outs.model }}", task: sentiment, epochs: 1 }
  test:
    uses: evaluate
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.tuned.outs.model }}", tasks: [sentiment, emotion] }
`;

test('two fresh runs of the ML stages give bit-identical safetensors; the weights load as safetensors', () => {
  const a = workspace({ 'dfwe.yaml': PIPELINE });
  const b = workspace({ 'dfwe.yaml': PIPELINE });
  for (const ws of [a, b]) {
    const r = dfwe(ws, ['run']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ran(r), ['base', 'data', 'expert', 'test', 'tuned', 'vocab']);
  }
  for (const node of ['expert', 'tuned']) {
    const digest = (ws: string): string => JSON.parse(dfwe(ws, ['show', node, '--json']).stdout).record.outputs.model.digest;
    assert.equal(digest(a), digest(b), `${node} differs between two fresh runs`);
  }
  const st = readSafetensors(join(a, 'out/tuned/model/weights.safetensors'));
  assert.ok(st.tensors.has('embed.tokens') && st.tensors.has('head.sentiment.w') && st.tensors.has('head.emotion.w'));
  const metrics = JSON.parse(readFileSync(join(a, 'out/test/metrics'), 'utf8'));
  assert.deepEqual(Object.keys(metrics.tasks), ['sentiment', 'emotion']);
  const show = dfwe(a, ['show', 'expert']);
  assert.match(show.stdout, /epoch 2\/2 {2}loss [\d.]+ {2}dev emotion [\d.]+/);
  const status = JSON.parse(dfwe(a, ['status', '--json']).stdout);
  assert.ok(status.nodes.every((n: { state: string }) => n.state === 'cached'));
  // The runtime is part of ML stages' keys: another backend is another result.
  const cpu = JSON.parse(dfwe(a, ['status', '--json', '--backend', 'cpu']).stdout);
  assert.deepEqual(cpu.nodes.filter((n: { state: string }) => n.state !== 'cached').map((n: { id: string }) => n.id), ['expert', 'tuned', 'test']);
});

test('QA dev loss with answers truncated away: the loss over the examples whose span survives, the same in any batch size', async () => {
  const tf = await loadTf('wasm');
  const ds = readDataset(smallDataset(40));
  const vocab = buildVocab(ds, 500, 1);
  const m = untrainedModel(ds, vocab, 24);
  const { cfg } = m;
  const vars = toVars(tf, m.weights);
  const exs = ds.examples('qa', 'dev');
  const kept = exs.filter((e) => spanPositions(encode(e, ds.dialogues.get(e.dialogue)!, vocab, cfg.maxLen), e.label as Span[]));
  assert.ok(kept.length > 0 && kept.length < exs.length, `some but not all answers survive ${cfg.maxLen} tokens: ${kept.length} of ${exs.length}`);
  const whole = evaluate(tf, cfg, vars, ds, vocab, 'qa', 'dev', 64);
  const oneByOne = evaluate(tf, cfg, vars, ds, vocab, 'qa', 'dev', 1);
  vars.forEach((v) => v.dispose());
  assert.ok(Number.isFinite(whole.loss), `dev loss ${whole.loss}`);
  assert.ok(Math.abs(whole.loss - oneByOne.loss) < 1e-4 * Math.max(1, oneByOne.loss), `batches of 64: ${whole.loss}, of 1: ${oneByOne.loss}`);
});

test('an output ensemble averages the models’ distributions: one model twice scores as that model, two give the loss of their mean', async () => {
  const tf = await loadTf('wasm');
  const ds = readDataset(smallDataset(40));
  const vocab = buildVocab(ds, 500, 1);
  const a = untrainedModel(ds, vocab, 48);
  const b = untrainedModel(ds, vocab, 48, 4);
  const va = toVars(tf, a.weights, 'a/');
  const vb = toVars(tf, b.weights, 'b/');
  for (const task of Object.keys(ds.manifest.tasks)) {
    const one = evaluate(tf, a.cfg, va, ds, vocab, task, 'dev');
    const twice = evaluate(tf, a.cfg, [va, va], ds, vocab, task, 'dev');
    assert.equal(twice.score, one.score, task);
    assert.ok(Number.isFinite(twice.loss) && Math.abs(twice.loss - one.loss) < 1e-4 * Math.max(1, one.loss), `${task}: ${twice.loss} vs ${one.loss}`);
  }
  // A single-label task by hand: the cross-entropy of the mean of the two softmaxes.
  const exs = ds.examples('emotion', 'dev');
  const batch = makeBatch(tf, exs.map((e) => encode(e, ds.dialogues.get(e.dialogue)!, vocab, a.cfg.maxLen)), a.cfg.maxLen);
  const pa = tf.softmax(forward(tf, a.cfg, va, 'emotion', batch)[0]!).arraySync() as number[][];
  const pb = tf.softmax(forward(tf, b.cfg, vb, 'emotion', batch)[0]!).arraySync() as number[][];
  disposeBatch(batch);
  const byHand = -exs.reduce((sum, e, i) => sum + Math.log((pa[i]![e.label as number]! + pb[i]![e.label as number]!) / 2), 0) / exs.length;
  const pair = evaluate(tf, a.cfg, [va, vb], ds, vocab, 'emotion', 'dev');
  assert.ok(Math.abs(pair.loss - byHand) < 1e-4, `ensemble loss ${pair.loss}, by hand ${byHand}`);
  [...va.values(), ...vb.values()].forEach((v) => v.dispose());
});
