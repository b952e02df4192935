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
import { dfwe, ran, workspace, write } from './helpers.js';
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
  const m = untrainedModel(ds, vocab, 48, 3, true);
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

test('item heads: QA scores depend on the question beyond the flags, an RC candidate is also where the dialogue names it, RE\'s x and y are apart', async () => {
  const tf = await loadTf('wasm');
  const ds = readDataset(smallDataset(40));
  const vocab = buildVocab(ds, 500, 1);
  const e = ds.examples('qa', 'dev')[0]!;
  const d = ds.dialogues.get(e.dialogue)!;
  // Two questions of words the dialogue never uses, one token each: the same flags, the same positions.
  const words = new Set(d.turns.flatMap((x) => `${x.speaker} ${x.text}`.toLowerCase().split(/\W+/)));
  const unused = vocab.tokens.filter((t) => /^[a-z]+$/.test(t) && !words.has(t)).slice(0, 2);
  const encs = unused.map((q) => encode({ ...e, item: q }, d, vocab, 48));
  const startLogits = (itemHeads: boolean): number[][] => {
    const m = untrainedModel(ds, vocab, 48, 3, itemHeads);
    const vars = toVars(tf, m.weights, `item-${itemHeads}/`);
    const batch = makeBatch(tf, encs, 48);
    const out = forward(tf, m.cfg, vars, 'qa', batch)[0]!.arraySync() as number[][];
    disposeBatch(batch);
    vars.forEach((v) => v.dispose());
    return out;
  };
  // Past the kernel's reach of the question (CLS, 1 token, SEP, then 3 positions), every dialogue position.
  const far = (rows: number[][]): number[][] => rows.map((r) => r.slice(6).filter((_, i) => encs[0]!.dialogueMask[i + 6] === 1));
  const [plainA, plainB] = far(startLogits(false));
  assert.deepEqual(plainA, plainB, 'without item heads a dialogue token far from the question does not see it');
  const [itemA, itemB] = far(startLogits(true));
  assert.ok(itemA!.length > 10 && itemA!.some((x, i) => Math.abs(x - itemB![i]!) > 1e-6), 'with item heads it does');
  // RC: a candidate who never speaks has positions only where the dialogue names them.
  const rc = { id: 'rc', dialogue: 'x', item: '@placeholder laughs', candidates: ['@ent00', '@ent01'], label: 1 };
  const dialogue = { id: 'x', turns: [{ speaker: '@ent00', text: 'where is @ent01 ?' }] };
  const named = (mentions: boolean): number => encode(rc, dialogue, vocab, 48, mentions).candidateMasks[1]!.reduce((a, x) => a + x, 0);
  assert.equal(named(false), 0);
  assert.equal(named(true), 1);
  // RE: x and y apart, where each speaks and where each is named.
  const re = { id: 're', dialogue: 'y', item: 'Speaker 2 ; Ross', label: [8] };
  const talk = { id: 'y', turns: [{ speaker: 'Speaker 1', text: 'hi ross' }, { speaker: 'Speaker 2', text: 'hey' }] };
  const enc = encode(re, talk, vocab, 48);
  const at = (flags: Float32Array): string[] => [...flags].flatMap((f, i) => (f ? [enc.turnOf[i]! >= 0 ? `${enc.turnOf[i]}:${enc.wordOf[i]}` : `turn ${i}`] : []));
  assert.deepEqual(at(enc.pairY), ['0:1'], 'y is named once');
  assert.equal(at(enc.pairX).filter((p) => p === '1:0').length, 1, "x speaks turn 1: its text is x's");
  assert.ok(at(enc.pairX).every((p) => !p.startsWith('0:')), "x's flag is not on turn 0");
});

test('max_len on a finetune: the finetuned model reads that many tokens (a cnn); a transformer is told to set it on init-model', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE.replace('task: sentiment, epochs: 1 }', 'task: sentiment, epochs: 1, max_len: 96 }') });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const cfgOf = (node: string): { maxLen: number } => JSON.parse(readFileSync(join(ws, `out/${node}/model/model.json`), 'utf8')).config;
  assert.equal(cfgOf('expert').maxLen, 64);
  assert.equal(cfgOf('tuned').maxLen, 96);
  write(ws, 'dfwe.yaml', PIPELINE.replace('hidden: 16, embed_dim: 8, max_len: 64', 'hidden: 16, embed_dim: 8, max_len: 64, encoder: transformer, heads: 2').replace('task: sentiment, epochs: 1 }', 'task: sentiment, epochs: 1, max_len: 96 }'));
  const t = dfwe(ws, ['run']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /tuned.*max_len 96: a transformer's position embeddings are sized for 64 tokens; set max_len on init-model instead/s);
});

test('pretrain: masked tokens of the training pools only, deterministic, its loss falls; epochs 0 passes the base through; a model with heads is refused', () => {
  const pipeline = PIPELINE.replace('max_len: 64 }\n', `max_len: 64 }
  pre:
    uses: pretrain
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.base.outs.model }}", epochs: 3, max_windows: 96, lr: 0.01 }
  same:
    uses: pretrain
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.base.outs.model }}", epochs: 0 }
`).replace('model: ${{ stages.base.outs.model }}', 'model: ${{ stages.pre.outs.model }}');
  const [a, b] = [workspace({ 'dfwe.yaml': pipeline }), workspace({ 'dfwe.yaml': pipeline })];
  for (const ws of [a, b]) {
    const r = dfwe(ws, ['run']);
    assert.equal(r.code, 0, r.stderr);
  }
  const digest = (ws: string, node: string): string => JSON.parse(dfwe(ws, ['show', node, '--json']).stdout).record.outputs.model.digest;
  assert.equal(digest(a, 'pre'), digest(b, 'pre'), 'two fresh runs give the same bytes');
  const ds = readDataset(join(a, 'out/data/data'));
  const corpus = new Set(ds.corpus().map((d) => d.id));
  const train = new Set(Object.keys(ds.manifest.tasks).flatMap((t) => ds.examples(t, 'train').map((e) => e.dialogue)));
  assert.ok(corpus.size > 0 && [...corpus].every((id) => train.has(id)), 'the corpus is training dialogues');
  assert.ok(Object.keys(ds.manifest.tasks).every((t) => ds.examples(t, 'test').every((e) => !corpus.has(e.dialogue))), 'no test dialogue');
  const history = JSON.parse(readFileSync(join(a, 'out/pre/model/model.json'), 'utf8')).history as { loss: number }[];
  assert.ok(history.length === 3 && history[2]!.loss < history[0]!.loss, `masked-token loss by epoch: ${history.map((h) => h.loss.toFixed(3))}`);
  const base = readSafetensors(join(a, 'out/base/model/weights.safetensors')).tensors;
  const pre = readSafetensors(join(a, 'out/pre/model/weights.safetensors')).tensors;
  assert.deepEqual([...pre.keys()].sort(), [...base.keys()].sort(), 'the output layer is dropped');
  assert.notDeepEqual(pre.get('encoder.w0'), base.get('encoder.w0'));
  assert.equal(digest(a, 'same').length > 0, true);
  assert.deepEqual(readFileSync(join(a, 'out/same/model/weights.safetensors')), readFileSync(join(a, 'out/base/model/weights.safetensors')));
  write(a, 'dfwe.yaml', pipeline.replace('model: "${{ stages.base.outs.model }}", epochs: 0', 'model: "${{ stages.tuned.outs.model }}", epochs: 0'));
  const refused = dfwe(a, ['run']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /same.*already has task heads \(.*sentiment.*\): pretrain a base model/s);
});
