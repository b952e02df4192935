import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import type { Dataset } from './data/dataset-io.js';
import type { Example, MetricName, Span, Split, TaskInfo } from './data/types.js';
import { encode, spanPositions, spanText, type Encoded } from './encode.js';
import { classification, multilabel, score, spans } from './metrics.js';
import { disposeBatch, forward, initHead, makeBatch, type ModelConfig, type Vars, type Weights } from './model.js';
import { Adam } from './adam.js';
import { Rng } from './random.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import type { Tf } from './tf.js';
import type { Vocab } from './vocab.js';
import { StageInputError } from '../stage-type.js';
import { maxOf } from '../util/arrays.js';

export interface ModelDir {
  cfg: ModelConfig;
  weights: Weights;
  /** Digest of the vocabulary the model was built with. */
  vocab: string;
  history?: unknown;
}

/** A model directory: model.json (architecture, vocabulary digest, tasks, history) + weights.safetensors. */
export function saveModel(dir: string, m: ModelDir): void {
  mkdirSync(dir, { recursive: true });
  // Wall times stay in the log and the node record: a model's bytes depend only on its inputs.
  const history = Array.isArray(m.history) ? (m.history as EpochLog[]).map(({ ms: _ms, ...rest }) => rest) : m.history;
  writeSafetensors(join(dir, 'weights.safetensors'), m.weights, { format: 'dfwe', encoder: m.cfg.encoder });
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 1, config: m.cfg, vocab: m.vocab, history: history ?? null }, null, 2) + '\n');
}

export function loadModel(dir: string): ModelDir {
  let meta: { format: number; config: ModelConfig; vocab: string; history?: unknown };
  try {
    meta = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  } catch (err) {
    throw new StageInputError(`${dir} is not a dfwe model (no readable model.json): ${(err as Error).message}`);
  }
  return { cfg: meta.config, weights: readSafetensors(join(dir, 'weights.safetensors')).tensors, vocab: meta.vocab, history: meta.history };
}

/** Add a head for each task the model lacks (deterministic from seed and task name). */
export function ensureHeads(m: ModelDir, tasks: TaskInfo[]): void {
  for (const t of tasks) {
    if (m.cfg.tasks[t.name]) continue;
    m.cfg.tasks[t.name] = { kind: t.kind, labels: t.labels };
    for (const [k, w] of initHead(m.cfg, t.name)) m.weights.set(k, w);
  }
}

/** tfjs variables of the weights; `scope` keeps the names of several models' variables apart. */
export function toVars(tf: Tf, w: Weights, scope = ''): Vars {
  return new Map([...w].map(([k, t]) => [k, tf.variable(tf.tensor(t.data, t.shape), true, `${scope}${k}`)]));
}

export function fromVars(v: Vars): Weights {
  return new Map([...v].map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) }]));
}

export interface Prepared {
  task: TaskInfo;
  examples: Example[];
  encs: Encoded[];
}

/** A task's examples of one split, encoded once (evaluation reuses them across calls). */
export function prepare(ds: Dataset, vocab: Vocab, task: string, split: Split, cfg: Pick<ModelConfig, 'maxLen' | 'itemHeads'>, limit?: number): Prepared {
  const info = ds.manifest.tasks[task]!;
  let examples = ds.examples(task, split);
  if (limit !== undefined) examples = examples.slice(0, limit);
  const encs = examples.map((e) => encode(e, ds.dialogues.get(e.dialogue)!, vocab, cfg.maxLen, cfg.itemHeads === true));
  return { task: info, examples, encs };
}

/** Targets of a batch by task kind; undefined entries (a span truncated away) are dropped by the caller. */
function targets(tf: Tf, p: Prepared, idx: number[], maxLen: number): TF.Tensor | TF.Tensor[] {
  const { task, examples, encs } = p;
  switch (task.kind) {
    case 'single':
      return tf.oneHot(tf.tensor1d(idx.map((i) => examples[i]!.label as number), 'int32'), task.labels!.length);
    case 'multi': {
      const c = task.labels!.length;
      const y = new Float32Array(idx.length * c);
      idx.forEach((i, r) => (examples[i]!.label as number[]).forEach((l) => (y[r * c + l] = 1)));
      return tf.tensor2d(y, [idx.length, c]);
    }
    case 'choice': {
      const c = maxOf(idx.map((i) => encs[i]!.candidateMasks.length));
      return tf.oneHot(tf.tensor1d(idx.map((i) => examples[i]!.label as number), 'int32'), c);
    }
    case 'span': {
      const pos = idx.map((i) => spanPositions(encs[i]!, examples[i]!.label as Span[])!);
      return [tf.oneHot(tf.tensor1d(pos.map((x) => x[0]), 'int32'), maxLen), tf.oneHot(tf.tensor1d(pos.map((x) => x[1]), 'int32'), maxLen)];
    }
  }
}

function lossOf(tf: Tf, kind: TaskInfo['kind'], out: TF.Tensor[], target: TF.Tensor | TF.Tensor[]): TF.Scalar {
  if (kind === 'multi') return tf.losses.sigmoidCrossEntropy(target as TF.Tensor, out[0]!) as TF.Scalar;
  if (kind === 'span') {
    const [s, e] = target as TF.Tensor[];
    return tf.add(tf.losses.softmaxCrossEntropy(s!, out[0]!), tf.losses.softmaxCrossEntropy(e!, out[1]!)) as TF.Scalar;
  }
  return tf.losses.softmaxCrossEntropy(target as TF.Tensor, out[0]!) as TF.Scalar;
}

/** Examples a batch may hold: a span example whose answer was truncated away teaches nothing. */
function trainable(p: Prepared): number[] {
  return p.examples.flatMap((e, i) => (p.task.kind !== 'span' || spanPositions(p.encs[i]!, e.label as Span[]) ? [i] : []));
}

export interface EvalResult {
  task: string;
  metrics: Partial<Record<MetricName, number>>;
  /** Mean of the task's metrics × 100. */
  score: number;
  loss: number;
  examples: number;
}

/** Deterministic evaluation: argmax decoding, the same batches in the same order. */
/**
 * A model's scores on a split. Given several models of one architecture, it scores their output
 * ensemble: each model's class, candidate or position distribution averaged, then decoded (and
 * its loss taken) as one model's would be.
 */
export function evaluate(tf: Tf, cfg: ModelConfig, vars: Vars | Vars[], ds: Dataset, vocab: Vocab, task: string, split: Split, batchSize = 64, prepared?: Prepared): EvalResult {
  const p = prepared ?? prepare(ds, vocab, task, split, cfg);
  const { task: info, examples, encs } = p;
  const members = Array.isArray(vars) ? vars : [vars];
  const preds: (number | number[] | string)[] = [];
  let lossSum = 0;
  let lossN = 0;
  for (let s = 0; s < examples.length; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, examples.length - s) }, (_, i) => s + i);
    const batch = makeBatch(tf, idx.map((i) => encs[i]!), cfg.maxLen);
    const outs = tf.tidy(() => (members.length === 1 ? forward(tf, cfg, members[0]!, task, batch) : averageOutputs(tf, info.kind, members.map((v) => forward(tf, cfg, v, task, batch)))));
    // A span example whose answer was truncated away has no target: the batch's loss is over the
    // others (requiring all of them left QA without a dev loss: no batch of 64 had every span).
    const rows = info.kind === 'span' ? idx.flatMap((i, r) => (spanPositions(encs[i]!, examples[i]!.label as Span[]) ? [r] : [])) : idx.map((_, r) => r);
    if (rows.length > 0) {
      const l = tf.tidy(() => {
        const kept = rows.length === idx.length ? outs : outs.map((o) => tf.gather(o, tf.tensor1d(rows, 'int32')));
        return lossOf(tf, info.kind, kept, targets(tf, p, rows.map((r) => idx[r]!), cfg.maxLen));
      });
      lossSum += l.dataSync()[0]! * rows.length;
      lossN += rows.length;
      l.dispose();
    }
    const data = outs.map((o) => o.dataSync() as Float32Array);
    const width = outs[0]!.shape[1]!;
    idx.forEach((ex, r) => {
      const row = (k: number): Float32Array => data[k]!.subarray(r * width, (r + 1) * width);
      if (info.kind === 'multi') preds.push(multiLabels(row(0), info.atLeastOne === true));
      else if (info.kind === 'span') preds.push(bestSpan(encs[ex]!, ds, examples[ex]!, row(0), row(1)));
      else preds.push(argmax(row(0)));
    });
    outs.forEach((o) => o.dispose());
    disposeBatch(batch);
  }
  let metrics: Partial<Record<MetricName, number>>;
  if (info.kind === 'single') metrics = classification(examples.map((e) => e.label as number), preds as number[], info.labels!.length);
  else if (info.kind === 'multi') metrics = multilabel(examples.map((e) => e.label as number[]), preds as number[][], info.labels!.length, info.unscored);
  else if (info.kind === 'choice') metrics = { exact_match: examples.filter((e, i) => e.label === preds[i]).length / Math.max(1, examples.length), accuracy: 0 };
  else {
    const golds = examples.map((e) => (e.label as Span[]).map((sp) => ds.dialogues.get(e.dialogue)!.turns[sp.turn]!.text.split(' ').slice(sp.start, sp.end + 1).join(' ')));
    metrics = spans(golds, preds as string[]);
  }
  if (info.kind === 'choice') metrics.accuracy = metrics.exact_match;
  return { task, metrics, score: score(metrics, info.metrics), loss: lossN ? lossSum / lossN : NaN, examples: examples.length };
}

/**
 * The mean of several models' distributions, as logits again: sigmoid probabilities per label
 * (multi), softmax over classes, candidates or positions (the rest). A masked position keeps a
 * probability of 0, so its log is floored rather than -Infinity.
 */
function averageOutputs(tf: Tf, kind: TaskInfo['kind'], outs: TF.Tensor[][]): TF.Tensor[] {
  return outs[0]!.map((_, k) => {
    const probs = outs.map((o) => (kind === 'multi' ? tf.sigmoid(o[k]!) : tf.softmax(o[k]!)));
    const mean = tf.div(tf.addN(probs), probs.length);
    if (kind === 'multi') {
      const p = tf.clipByValue(mean, 1e-7, 1 - 1e-7);
      return tf.sub(tf.log(p), tf.log(tf.sub(1, p)));
    }
    return tf.log(tf.maximum(mean, 1e-30));
  });
}

/** Classes whose logit passes 0 (p > 0.5); with `atLeastOne`, the top class when none does. */
export function multiLabels(logits: Float32Array, atLeastOne: boolean): number[] {
  const on = [...logits].flatMap((x, c) => (x > 0 ? [c] : []));
  return on.length || !atLeastOne ? on : [argmax(logits)];
}

function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** The highest-scoring span of at most 10 tokens within one turn. */
function bestSpan(enc: Encoded, ds: Dataset, e: Example, start: Float32Array, end: Float32Array): string {
  let best = -Infinity;
  let bs = -1;
  let be = -1;
  for (let s = 0; s < start.length; s++) {
    if (enc.dialogueMask[s] !== 1) continue;
    for (let t = s; t < Math.min(end.length, s + 10); t++) {
      if (enc.dialogueMask[t] !== 1 || enc.turnOf[t] !== enc.turnOf[s]) break;
      const v = start[s]! + end[t]!;
      if (v > best) {
        best = v;
        bs = s;
        be = t;
      }
    }
  }
  return bs < 0 ? '' : spanText(enc, ds.dialogues.get(e.dialogue)!, bs, be);
}

export interface TrainOptions {
  tasks: string[];
  /** Early stopping on this task's dev score (kept: the best epoch's weights). */
  target?: string;
  epochs: number;
  lr: number;
  batchSize: number;
  seed: number;
  /** How batches of several tasks mix: by dataset size, or by size^(1/temperature). */
  mixing: 'size' | 'temperature';
  temperature: number;
  patience: number;
  /** Cap on training examples per task (for quick runs). */
  maxTrain?: number;
}

export interface EpochLog {
  epoch: number;
  loss: number;
  dev?: number;
  devLoss?: number;
  ms: number;
}

/**
 * Train on a set of tasks from the given weights. Deterministic: the batch order comes from
 * seeded generators, and the ops are deterministic on one backend.
 */
export function train(tf: Tf, m: ModelDir, ds: Dataset, vocab: Vocab, opts: TrainOptions, log: (line: string) => void): { weights: Weights; history: EpochLog[]; best?: EvalResult } {
  const infos = opts.tasks.map((t) => ds.manifest.tasks[t]!);
  ensureHeads(m, infos);
  if (opts.target) ensureHeads(m, [ds.manifest.tasks[opts.target]!]);
  const cfg = m.cfg;
  const vars = toVars(tf, m.weights);
  const data = new Map(opts.tasks.map((t) => [t, prepare(ds, vocab, t, 'train', cfg, opts.maxTrain)]));
  const dev = opts.target ? prepare(ds, vocab, opts.target, 'dev', cfg) : undefined;
  const optimizer = new Adam(tf, opts.lr);
  const encoderVars = [...vars].filter(([k]) => !k.startsWith('head.')).map(([, v]) => v);
  const history: EpochLog[] = [];
  let best: { result: EvalResult; weights: Weights } | undefined;
  let sinceBest = 0;
  for (let epoch = 1; epoch <= opts.epochs; epoch++) {
    const t0 = performance.now();
    // Each task's batches in a seeded order, then interleaved by a seeded draw weighted by size.
    const queues = opts.tasks.map((t) => {
      const idx = new Rng(`${opts.seed}:shuffle:${t}:${epoch}`).shuffle(trainable(data.get(t)!));
      const batches: number[][] = [];
      for (let s = 0; s < idx.length; s += opts.batchSize) batches.push(idx.slice(s, s + opts.batchSize));
      return { task: t, batches, weight: Math.pow(idx.length, opts.mixing === 'temperature' ? 1 / opts.temperature : 1) };
    });
    const mix = new Rng(`${opts.seed}:mix:${epoch}`);
    let lossSum = 0;
    let steps = 0;
    for (;;) {
      const open = queues.filter((q) => q.batches.length > 0);
      if (open.length === 0) break;
      const q = open[mix.weighted(open.map((x) => x.weight))]!;
      const idx = q.batches.shift()!;
      const p = data.get(q.task)!;
      const batch = makeBatch(tf, idx.map((i) => p.encs[i]!), cfg.maxLen);
      const headVars = [...vars].filter(([k]) => k.startsWith(`head.${q.task}.`)).map(([, v]) => v);
      const { value, grads } = tf.variableGrads(() => lossOf(tf, p.task.kind, forward(tf, cfg, vars, q.task, batch), targets(tf, p, idx, cfg.maxLen)), [...encoderVars, ...headVars]);
      optimizer.apply(vars, grads);
      lossSum += value.dataSync()[0]!;
      steps++;
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
      disposeBatch(batch);
    }
    const entry: EpochLog = { epoch, loss: lossSum / Math.max(1, steps), ms: performance.now() - t0 };
    if (dev && opts.target) {
      const r = evaluate(tf, cfg, vars, ds, vocab, opts.target, 'dev', 64, dev);
      entry.dev = r.score;
      entry.devLoss = r.loss;
      if (!best || r.score > best.result.score || (r.score === best.result.score && r.loss < best.result.loss)) {
        best = { result: r, weights: fromVars(vars) };
        sinceBest = 0;
      } else sinceBest++;
    }
    history.push(entry);
    log(`epoch ${epoch}/${opts.epochs}  loss ${entry.loss.toFixed(4)}${entry.dev !== undefined ? `  dev ${opts.target} ${entry.dev.toFixed(2)}` : ''}  (${(entry.ms / 1000).toFixed(1)}s)`);
    if (best && sinceBest >= opts.patience) {
      log(`early stop: no dev improvement for ${opts.patience} epochs; keeping epoch ${history.findIndex((h) => h.dev === best!.result.score) + 1}`);
      break;
    }
  }
  const weights = best ? best.weights : fromVars(vars);
  vars.forEach((v) => v.dispose());
  optimizer.dispose();
  return { weights, history, best: best?.result };
}
