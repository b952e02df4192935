import type * as TF from '@tensorflow/tfjs';
import type { TaskInfo } from './data/types.js';
import type { Encoded } from './encode.js';
import { Rng } from './random.js';
import type { NamedTensor } from './safetensors.js';
import { PAD } from './vocab.js';
import type { Tf } from './tf.js';

/*
 * Models are plain tf ops over a flat name → tensor map, so weights of models that share an
 * initialisation can be mixed, saved and hashed by name. A shared encoder (token + turn-speaker
 * embeddings plus three flag embeddings, then `bow` or a `cnn`) gives per-token features; each
 * task has a head by its kind. Dense layers are 2-D matmuls (the fast path on wasm); the CNN is
 * k shifted matmuls rather than conv1d, whose filter gradient wasm lacks.
 */

/** bow and cnn run well on CPU (wasm); transformer is for the GPU backend (its batched matmuls are slow on wasm). */
export type EncoderKind = 'bow' | 'cnn' | 'transformer';

export interface ModelConfig {
  encoder: EncoderKind;
  vocabSize: number;
  embedDim: number;
  hidden: number;
  kernel: number;
  /** transformer: layers and attention heads. */
  layers?: number;
  heads?: number;
  maxLen: number;
  seed: number;
  /**
   * Span and choice heads read the item: token and candidate scores are conditioned on the
   * pooled question (query) vector, and a candidate is also where the dialogue names it.
   */
  itemHeads?: boolean;
  /** Tasks with a head: name → kind, classes. */
  tasks: Record<string, Pick<TaskInfo, 'kind' | 'labels'>>;
}

export type Weights = Map<string, NamedTensor>;

function glorot(rng: Rng, shape: number[], fanIn = shape.length > 1 ? shape[shape.length - 2]! : shape[0]!): Float32Array {
  const fanOut = shape[shape.length - 1]!;
  const scale = Math.sqrt(2 / (fanIn + fanOut));
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * scale;
  return out;
}

/** Weights drawn from our own seeded generator: the same bytes on every backend. */
export function initEncoder(cfg: ModelConfig): Weights {
  const rng = new Rng(`init:${cfg.seed}:encoder`);
  const w: Weights = new Map();
  const put = (name: string, shape: number[], data?: Float32Array): void => void w.set(name, { shape, data: data ?? glorot(rng, shape) });
  const emb = new Float32Array(cfg.vocabSize * cfg.embedDim);
  for (let i = 0; i < emb.length; i++) emb[i] = rng.normal() * 0.1;
  emb.fill(0, 0, cfg.embedDim); // [PAD] stays zero
  put('embed.tokens', [cfg.vocabSize, cfg.embedDim], emb);
  put('embed.flags', [3, cfg.embedDim], glorot(rng, [3, cfg.embedDim]));
  const taps = cfg.encoder === 'cnn' ? cfg.kernel : 1;
  // Each tap sees embedDim inputs; together they see embedDim × taps.
  for (let j = 0; j < taps; j++) put(`encoder.w${j}`, [cfg.embedDim, cfg.hidden], glorot(rng, [cfg.embedDim, cfg.hidden], cfg.embedDim * taps));
  put('encoder.b', [cfg.hidden], new Float32Array(cfg.hidden));
  if (cfg.encoder === 'transformer') {
    const h = cfg.hidden;
    const pos = new Float32Array(cfg.maxLen * h);
    for (let i = 0; i < pos.length; i++) pos[i] = rng.normal() * 0.02;
    put('encoder.pos', [cfg.maxLen, h], pos);
    for (let l = 0; l < (cfg.layers ?? 2); l++) {
      for (const k of ['q', 'k', 'v', 'o']) put(`encoder.l${l}.${k}`, [h, h]);
      put(`encoder.l${l}.ff1`, [h, 2 * h]);
      put(`encoder.l${l}.ff1b`, [2 * h], new Float32Array(2 * h));
      put(`encoder.l${l}.ff2`, [2 * h, h]);
      put(`encoder.l${l}.ff2b`, [h], new Float32Array(h));
      for (const n of ['ln1', 'ln2']) {
        put(`encoder.l${l}.${n}g`, [h], new Float32Array(h).fill(1));
        put(`encoder.l${l}.${n}b`, [h], new Float32Array(h));
      }
    }
  }
  // Last, so that the rest of the encoder is drawn as without item heads.
  if (cfg.itemHeads) put('embed.pair', [2, cfg.embedDim], glorot(rng, [2, cfg.embedDim]));
  return w;
}

export function headShapes(cfg: ModelConfig, task: string): Record<string, number[]> {
  const t = cfg.tasks[task]!;
  const h = cfg.hidden;
  switch (t.kind) {
    case 'single':
    case 'multi':
      return { w: [(cfg.itemHeads ? 5 : 3) * h, t.labels!.length], b: [t.labels!.length] };
    case 'choice':
      return { w1: [(cfg.itemHeads ? 3 : 2) * h, h], b1: [h], w2: [h, 1] };
    case 'span':
      return { start: [(cfg.itemHeads ? 2 : 1) * h, 1], end: [(cfg.itemHeads ? 2 : 1) * h, 1] };
  }
}

/** A head the model lacks, initialised from (seed, task) alone: deterministic wherever it is added. */
export function initHead(cfg: ModelConfig, task: string): Weights {
  const rng = new Rng(`init:${cfg.seed}:head:${task}`);
  const w: Weights = new Map();
  for (const [k, shape] of Object.entries(headShapes(cfg, task))) {
    w.set(`head.${task}.${k}`, { shape, data: k.startsWith('b') ? new Float32Array(shape[0]!) : glorot(rng, shape) });
  }
  return w;
}

export interface Batch {
  tokens: TF.Tensor2D;
  speakers: TF.Tensor2D;
  flags: TF.Tensor3D;
  valid: TF.Tensor3D;
  focus: TF.Tensor3D;
  speakerMatch: TF.Tensor3D;
  item: TF.Tensor3D;
  /** [B, L, 2]: where the pair's x and y are. */
  pair: TF.Tensor3D;
  dialogueMask: TF.Tensor2D;
  candidates?: TF.Tensor3D;
  candidateValid?: TF.Tensor2D;
}

function pairFlags(encs: Encoded[], maxLen: number): Float32Array {
  const out = new Float32Array(encs.length * maxLen * 2);
  encs.forEach((e, i) => {
    for (let p = 0; p < maxLen; p++) {
      out[2 * (i * maxLen + p)] = e.pairX[p]!;
      out[2 * (i * maxLen + p) + 1] = e.pairY[p]!;
    }
  });
  return out;
}

export function makeBatch(tf: Tf, encs: Encoded[], maxLen: number): Batch {
  const b = encs.length;
  const cat = <T extends Int32Array | Float32Array>(ctor: new (n: number) => T, pick: (e: Encoded) => T): T => {
    const out = new ctor(b * maxLen);
    encs.forEach((e, i) => out.set(pick(e), i * maxLen));
    return out;
  };
  const tokens = cat(Int32Array, (e) => e.tokens);
  const focus = cat(Float32Array, (e) => e.focus);
  const item = cat(Float32Array, (e) => e.itemMatch);
  const named = cat(Float32Array, (e) => e.speakerMatch);
  const flags = new Float32Array(b * maxLen * 3);
  const valid = new Float32Array(b * maxLen);
  for (let i = 0; i < b * maxLen; i++) {
    flags[3 * i] = focus[i]!;
    flags[3 * i + 1] = item[i]!;
    flags[3 * i + 2] = named[i]!;
    valid[i] = tokens[i] === PAD ? 0 : 1;
  }
  const batch: Batch = {
    tokens: tf.tensor2d(tokens, [b, maxLen], 'int32'),
    speakers: tf.tensor2d(cat(Int32Array, (e) => e.speakers), [b, maxLen], 'int32'),
    flags: tf.tensor3d(flags, [b, maxLen, 3]),
    valid: tf.tensor3d(valid, [b, maxLen, 1]),
    focus: tf.tensor3d(focus, [b, maxLen, 1]),
    speakerMatch: tf.tensor3d(named, [b, maxLen, 1]),
    item: tf.tensor3d(cat(Float32Array, (e) => e.itemMask), [b, maxLen, 1]),
    pair: tf.tensor3d(pairFlags(encs, maxLen), [b, maxLen, 2]),
    dialogueMask: tf.tensor2d(cat(Float32Array, (e) => e.dialogueMask), [b, maxLen]),
  };
  const c = Math.max(0, ...encs.map((e) => e.candidateMasks.length));
  if (c > 0) {
    const masks = new Float32Array(b * c * maxLen);
    const cv = new Float32Array(b * c);
    encs.forEach((e, i) =>
      e.candidateMasks.forEach((m, j) => {
        // Mean over the candidate's positions: normalise here, so the model does one matmul.
        const total = m.reduce((a, x) => a + x, 0);
        cv[i * c + j] = 1;
        if (total > 0) for (let p = 0; p < maxLen; p++) masks[(i * c + j) * maxLen + p] = m[p]! / total;
      }),
    );
    batch.candidates = tf.tensor3d(masks, [b, c, maxLen]);
    batch.candidateValid = tf.tensor2d(cv, [b, c]);
  }
  return batch;
}

export function disposeBatch(batch: Batch): void {
  for (const t of Object.values(batch)) (t as TF.Tensor | undefined)?.dispose();
}

export type Vars = Map<string, TF.Variable>;

/** Per-token features [B·L, H], the pooled summary [B, 3H] (5H with item heads), and (item heads) the item's mean [B, H]. */
export function encodeTokens(tf: Tf, cfg: ModelConfig, v: Vars, batch: Batch): { tokens: TF.Tensor2D; pooled: TF.Tensor2D; item?: TF.Tensor2D; b: number; l: number } {
  const [b, l] = batch.tokens.shape;
  const e = cfg.embedDim;
  const table = v.get('embed.tokens')!;
  const flat = (t: TF.Tensor2D): TF.Tensor1D => tf.reshape(t, [b * l]);
  let x = tf.add(tf.gather(table, flat(batch.tokens)), tf.mul(tf.gather(table, flat(batch.speakers)), 0.5)) as TF.Tensor2D;
  x = tf.add(x, tf.matMul(tf.reshape(batch.flags, [b * l, 3]), v.get('embed.flags')!));
  if (cfg.itemHeads) x = tf.add(x, tf.matMul(tf.reshape(batch.pair, [b * l, 2]), v.get('embed.pair')!));
  let h: TF.Tensor2D;
  // bow and the transformer start with a per-token dense layer (initEncoder gives them one tap).
  if (cfg.encoder !== 'cnn') {
    h = tf.matMul(x, v.get('encoder.w0')!);
  } else {
    const half = Math.floor(cfg.kernel / 2);
    const padded = tf.pad(tf.reshape(x, [b, l, e]), [[0, 0], [half, cfg.kernel - 1 - half], [0, 0]]);
    h = tf.zeros([b * l, cfg.hidden]);
    for (let j = 0; j < cfg.kernel; j++) {
      const shifted = tf.reshape(tf.slice(padded, [0, j, 0], [b, l, e]), [b * l, e]);
      h = tf.add(h, tf.matMul(shifted, v.get(`encoder.w${j}`)!));
    }
  }
  h = tf.relu(tf.add(h, v.get('encoder.b')!)) as TF.Tensor2D;
  if (cfg.encoder === 'transformer') h = transformerLayers(tf, cfg, v, h, batch, b, l);
  const h3 = tf.mul(tf.reshape(h, [b, l, cfg.hidden]), batch.valid);
  const meanOver = (mask: TF.Tensor3D): TF.Tensor2D => tf.div(tf.sum(tf.mul(h3, mask), 1), tf.maximum(tf.sum(mask, 1), 1)) as TF.Tensor2D;
  const pools = [tf.max(h3, 1) as TF.Tensor2D, meanOver(batch.focus), meanOver(batch.speakerMatch)];
  // Item heads: x's and y's positions apart (zeros for a task whose item is not a pair).
  if (cfg.itemHeads) pools.push(meanOver(tf.slice(batch.pair, [0, 0, 0], [b, l, 1])), meanOver(tf.slice(batch.pair, [0, 0, 1], [b, l, 1])));
  const pooled = tf.concat(pools, 1);
  return { tokens: tf.reshape(h3, [b * l, cfg.hidden]), pooled, ...(cfg.itemHeads ? { item: meanOver(batch.item) } : {}), b, l };
}

const NEG = -1e9;

function layerNorm(tf: Tf, x: TF.Tensor2D, g: TF.Tensor, beta: TF.Tensor): TF.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), beta) as TF.Tensor2D;
}

/** Post-norm transformer layers over [B·L, H] token features, attention masked to real tokens. */
function transformerLayers(tf: Tf, cfg: ModelConfig, v: Vars, x0: TF.Tensor2D, batch: Batch, b: number, l: number): TF.Tensor2D {
  const h = cfg.hidden;
  const heads = cfg.heads ?? 4;
  const dh = h / heads;
  let x = tf.add(x0, tf.reshape(tf.tile(tf.expandDims(v.get('encoder.pos')!, 0), [b, 1, 1]), [b * l, h])) as TF.Tensor2D;
  // Keys that are padding get -1e9 before the softmax: [B, 1, 1, L].
  const keyMask = tf.reshape(tf.mul(tf.sub(1, tf.reshape(batch.valid, [b, l])), NEG), [b, 1, 1, l]);
  const split = (t: TF.Tensor2D): TF.Tensor4D => tf.transpose(tf.reshape(t, [b, l, heads, dh]), [0, 2, 1, 3]);
  for (let layer = 0; layer < (cfg.layers ?? 2); layer++) {
    const p = (k: string): TF.Variable => v.get(`encoder.l${layer}.${k}`)!;
    const q = split(tf.matMul(x, p('q')));
    const k = split(tf.matMul(x, p('k')));
    const val = split(tf.matMul(x, p('v')));
    const scores = tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(dh)), keyMask);
    const ctx = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), val), [0, 2, 1, 3]), [b * l, h]);
    x = layerNorm(tf, tf.add(x, tf.matMul(ctx, p('o'))) as TF.Tensor2D, p('ln1g'), p('ln1b'));
    const ff = tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, p('ff1')), p('ff1b'))), p('ff2')), p('ff2b'));
    x = layerNorm(tf, tf.add(x, ff) as TF.Tensor2D, p('ln2g'), p('ln2b'));
  }
  return x;
}

/** The head's raw output: class logits [B, C], candidate scores [B, C], or start/end logits [B, L] each. */
export function forward(tf: Tf, cfg: ModelConfig, v: Vars, task: string, batch: Batch): TF.Tensor[] {
  const { tokens, pooled, item, b, l } = encodeTokens(tf, cfg, v, batch);
  const kind = cfg.tasks[task]!.kind;
  const p = (k: string): TF.Variable => v.get(`head.${task}.${k}`)!;
  const h = cfg.hidden;
  // The item's vector beside each of n rows per example: [B, n, H].
  const itemFor = (n: number): TF.Tensor3D => tf.tile(tf.expandDims(item!, 1), [1, n, 1]) as TF.Tensor3D;
  if (kind === 'single' || kind === 'multi') return [tf.add(tf.matMul(pooled, p('w')), p('b'))];
  if (kind === 'span') {
    const mask = tf.mul(tf.sub(1, batch.dialogueMask), NEG);
    // A token's score also depends on how it matches the question: [token, token ⊙ question].
    const feats = item ? tf.concat([tokens, tf.mul(tokens, tf.reshape(itemFor(l), [b * l, h]))], 1) : tokens;
    return [tf.add(tf.reshape(tf.matMul(feats, p('start')), [b, l]), mask), tf.add(tf.reshape(tf.matMul(feats, p('end')), [b, l]), mask)];
  }
  const c = batch.candidates!.shape[1];
  const reps = tf.matMul(batch.candidates!, tf.reshape(tokens, [b, l, h])); // [B, C, H]
  const globalMax = tf.tile(tf.expandDims(tf.slice(pooled, [0, 0], [b, h]), 1), [1, c, 1]);
  const parts = item ? [reps, globalMax, tf.mul(reps, itemFor(c))] : [reps, globalMax];
  const both = tf.reshape(tf.concat(parts, 2), [b * c, parts.length * h]);
  const scores = tf.reshape(tf.matMul(tf.relu(tf.add(tf.matMul(both, p('w1')), p('b1'))), p('w2')), [b, c]);
  return [tf.add(scores, tf.mul(tf.sub(1, batch.candidateValid!), NEG))];
}

/** Training loss of one batch; `labels` as Encoded labels per example (see train.ts). */
export function loss(tf: Tf, cfg: ModelConfig, v: Vars, task: string, batch: Batch, target: TF.Tensor | TF.Tensor[]): TF.Scalar {
  const kind = cfg.tasks[task]!.kind;
  const out = forward(tf, cfg, v, task, batch);
  if (kind === 'multi') return tf.losses.sigmoidCrossEntropy(target as TF.Tensor, out[0]!) as TF.Scalar;
  if (kind === 'span') {
    const [s, e] = target as TF.Tensor[];
    return tf.add(tf.losses.softmaxCrossEntropy(s!, out[0]!), tf.losses.softmaxCrossEntropy(e!, out[1]!)) as TF.Scalar;
  }
  return tf.losses.softmaxCrossEntropy(target as TF.Tensor, out[0]!) as TF.Scalar;
}
