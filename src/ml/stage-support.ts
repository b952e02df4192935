import { readFileSync, writeFileSync } from 'node:fs';
import { readDataset, type Dataset } from './data/dataset-io.js';
import type { StageResult, StageRunContext } from '../stage-type.js';
import { StageInputError } from '../stage-type.js';
import { loadModel, saveModel, train } from './train.js';
import { chooseBackend, type BackendName } from './runtime.js';
import { loadTf, type Tf } from './tf.js';
import { digestBytes } from '../util/hash.js';
import { vocabFromTokens, type Vocab } from './vocab.js';
import type { FromSchema } from '../util/schema-type.js';
import type { MODEL_INPUTS, TRAIN_PARAMS } from './schema-parts.js';

/** What ML stages share: the runtime the engine chose, and their inputs read from params. */

/** What train-expert and finetune are given: their model inputs and TRAIN_PARAMS, defaults filled in. */
type TrainParams = FromSchema<{ type: 'object'; required: ['data', 'vocab', 'model']; properties: typeof MODEL_INPUTS & typeof TRAIN_PARAMS }>;

export async function tfFor(ctx: StageRunContext): Promise<Tf> {
  const backend = (ctx.runtime?.backend as BackendName | undefined) ?? chooseBackend();
  return loadTf(backend);
}

export function dataset(ctx: StageRunContext<{ data: string }>): Dataset {
  return readDataset(ctx.resolve(ctx.params.data));
}

export function vocabulary(ctx: StageRunContext<{ vocab: string }>): { vocab: Vocab; digest: string } {
  const text = readFileSync(ctx.resolve(ctx.params.vocab), 'utf8');
  return { vocab: vocabFromTokens((JSON.parse(text) as { tokens: string[] }).tokens), digest: digestBytes(text) };
}

export function writeVocab(path: string, v: Vocab): void {
  writeFileSync(path, JSON.stringify({ format: 1, tokens: v.tokens }) + '\n');
}

/**
 * train-expert and finetune: load the inputs, check the tasks exist, train, save the model,
 * and report the epochs and the best dev score.
 */
export async function trainStage(ctx: StageRunContext<TrainParams>, opts: { tasks: string[]; target?: string; mixing: 'size' | 'temperature'; temperature: number }): Promise<StageResult> {
  const tf = await tfFor(ctx);
  const ds = dataset(ctx);
  const { vocab, digest } = vocabulary(ctx);
  const m = loadModel(ctx.resolve(ctx.params.model));
  for (const t of [...opts.tasks, ...(opts.target ? [opts.target] : [])]) {
    if (!ds.manifest.tasks[t]) throw new StageInputError(`task "${t}" is not in the dataset; it has ${Object.keys(ds.manifest.tasks).join(', ')}`);
  }
  const p = ctx.params;
  if (p.max_len !== undefined && p.max_len !== m.cfg.maxLen) {
    if (m.cfg.encoder === 'transformer') throw new StageInputError(`max_len ${p.max_len}: a transformer's position embeddings are sized for ${m.cfg.maxLen} tokens; set max_len on init-model instead`);
    m.cfg = { ...m.cfg, maxLen: p.max_len };
  }
  const r = train(tf, m, ds, vocab, {
    ...opts, epochs: p.epochs, lr: p.lr, batchSize: p.batch_size, seed: p.seed, patience: p.patience, maxTrain: p.max_train,
  }, ctx.log);
  saveModel(ctx.outs.model!, { cfg: m.cfg, weights: r.weights, vocab: digest, history: r.history });
  return { metrics: { epochs: r.history.length, ...(r.best ? { dev_score: r.best.score, dev_loss: r.best.loss } : {}) } };
}

