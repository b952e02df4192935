import type * as TF from '@tensorflow/tfjs';
import type { Dialogue } from './data/types.js';
import { Adam } from './adam.js';
import { encode, type Encoded } from './encode.js';
import { disposeBatch, encodeTokens, makeBatch, type Weights } from './model.js';
import { Rng } from './random.js';
import type { Tf } from './tf.js';
import { fromVars, toVars, type ModelDir } from './train.js';
import { UNK, type Vocab } from './vocab.js';
import { maxOf } from '../util/arrays.js';

/*
 * Self-supervised training of the shared encoder on unlabelled dialogue text (the dataset's
 * corpus: training pools only), before any expert: masked tokens of the dialogue are predicted
 * from the encoder's features at their positions, through an output layer that is dropped
 * afterwards. Deterministic: windows, masks and batch order come from seeded generators.
 */

export interface PretrainOptions {
  epochs: number;
  lr: number;
  batchSize: number;
  seed: number;
  /** Share of a window's dialogue tokens masked (replaced by [UNK]) and predicted. */
  maskRate: number;
  /** At most this many windows, drawn seeded from the corpus (all when undefined). */
  maxWindows?: number;
}

/** Windows of a dialogue that together cover it: each anchored on the first turn the previous left out. */
export function corpusWindows(dialogues: Dialogue[], vocab: Vocab, maxLen: number): Encoded[] {
  const out: Encoded[] = [];
  for (const d of dialogues) {
    let anchor = 0;
    while (anchor < d.turns.length) {
      const enc = encode({ id: d.id, dialogue: d.id, focus: anchor, label: 0 }, d, vocab, maxLen);
      enc.focus.fill(0); // which turn anchors a window is not a signal here
      out.push(enc);
      const last = maxOf(enc.turnOf);
      if (last < anchor) break; // a turn longer than the window: its start is all there is
      anchor = last + 1;
    }
  }
  return out;
}

/** A window with tokens masked: the masked copy, and each masked position with its token. */
function masked(enc: Encoded, rng: Rng, rate: number): { enc: Encoded; positions: number[]; targets: number[] } {
  const candidates = [...enc.dialogueMask.keys()].filter((p) => enc.dialogueMask[p] === 1 && enc.tokens[p] !== UNK);
  const positions = candidates.filter(() => rng.next() < rate);
  if (positions.length === 0 && candidates.length > 0) positions.push(candidates[Math.floor(rng.next() * candidates.length)]!);
  const tokens = Int32Array.from(enc.tokens);
  const targets = positions.map((p) => enc.tokens[p]!);
  for (const p of positions) tokens[p] = UNK;
  return { enc: { ...enc, tokens }, positions, targets };
}

export function pretrain(tf: Tf, m: ModelDir, corpus: Dialogue[], vocab: Vocab, opts: PretrainOptions, log: (line: string) => void): { weights: Weights; history: { epoch: number; loss: number; windows: number; ms: number }[] } {
  const cfg = m.cfg;
  let windows = corpusWindows(corpus, vocab, cfg.maxLen);
  if (opts.maxWindows !== undefined && windows.length > opts.maxWindows) windows = new Rng(`${opts.seed}:pretrain-windows`).sample(windows, opts.maxWindows);
  log(`${corpus.length} dialogues, ${windows.length} windows of ${cfg.maxLen} tokens; ${(opts.maskRate * 100).toFixed(0)}% of dialogue tokens masked`);
  const vars = toVars(tf, m.weights);
  const rng = new Rng(`init:${cfg.seed}:pretrain-output`);
  const scale = Math.sqrt(2 / (cfg.hidden + cfg.vocabSize));
  const out = {
    w: tf.variable(tf.tensor2d(Float32Array.from({ length: cfg.hidden * cfg.vocabSize }, () => rng.normal() * scale), [cfg.hidden, cfg.vocabSize]), true, 'pretrain.w'),
    b: tf.variable(tf.zeros([cfg.vocabSize]), true, 'pretrain.b'),
  };
  const all = new Map<string, TF.Variable>([...vars, ['pretrain.w', out.w], ['pretrain.b', out.b]]);
  const optimizer = new Adam(tf, opts.lr);
  const history: { epoch: number; loss: number; windows: number; ms: number }[] = [];
  for (let epoch = 1; epoch <= opts.epochs; epoch++) {
    const t0 = performance.now();
    const order = new Rng(`${opts.seed}:pretrain-order:${epoch}`).shuffle([...windows.keys()]);
    const maskRng = new Rng(`${opts.seed}:pretrain-mask:${epoch}`);
    let lossSum = 0;
    let steps = 0;
    for (let s = 0; s < order.length; s += opts.batchSize) {
      const picked = order.slice(s, s + opts.batchSize).map((i) => masked(windows[i]!, maskRng, opts.maskRate));
      const rows = picked.flatMap((x, i) => x.positions.map((p) => i * cfg.maxLen + p));
      if (rows.length === 0) continue;
      const batch = makeBatch(tf, picked.map((x) => x.enc), cfg.maxLen);
      const rowIdx = tf.tensor1d(rows, 'int32');
      const target = tf.oneHot(tf.tensor1d(picked.flatMap((x) => x.targets), 'int32'), cfg.vocabSize);
      const { value, grads } = tf.variableGrads(() => {
        const feats = tf.gather(encodeTokens(tf, cfg, all, batch).tokens, rowIdx);
        return tf.losses.softmaxCrossEntropy(target, tf.add(tf.matMul(feats, out.w), out.b)) as TF.Scalar;
      }, [...all.values()]);
      optimizer.apply(all, grads);
      lossSum += value.dataSync()[0]!;
      steps++;
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
      [rowIdx, target].forEach((t) => t.dispose());
      disposeBatch(batch);
    }
    history.push({ epoch, loss: lossSum / Math.max(1, steps), windows: windows.length, ms: performance.now() - t0 });
    log(`pretrain epoch ${epoch}/${opts.epochs}  masked-token loss ${history.at(-1)!.loss.toFixed(4)}  (${(history.at(-1)!.ms / 1000).toFixed(1)}s)`);
  }
  const weights = fromVars(vars);
  [...all.values()].forEach((v) => v.dispose());
  optimizer.dispose();
  return { weights, history };
}
