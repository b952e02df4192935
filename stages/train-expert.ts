import { dataset, PATH, TRAIN_PARAMS, tfFor, vocabulary, type TrainParams } from '../src/ml/stage-support.js';
import { loadModel, saveModel, train } from '../src/ml/train.js';
import type { StageType } from '../src/stage-type.js';

/**
 * An expert: the base model trained on one task or several (multi-task batches mixed by size or
 * temperature). With a `target`, training stops early on the target's dev score.
 */
export const trainExpert: StageType = {
  name: 'train-expert',
  version: 1,
  description: 'Train a model on a set of tasks, from a base model',
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'model', 'tasks'],
    properties: {
      data: { ...PATH, description: 'The dataset' },
      vocab: { ...PATH, description: 'The vocabulary' },
      model: { ...PATH, description: 'The model to start from (init-model)' },
      tasks: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'Tasks to train on' },
      target: { type: 'string', description: "Stop early on this task's dev score (keeps the best epoch)" },
      mixing: { enum: ['size', 'temperature'], default: 'size', description: 'How batches of several tasks mix' },
      temperature: { type: 'number', exclusiveMinimum: 0, default: 2, description: 'With mixing: temperature, task weight = size^(1/temperature)' },
      ...TRAIN_PARAMS,
    },
  },
  outputs: () => ({ model: 'dir' }),
  async run(ctx) {
    const tf = await tfFor(ctx);
    const ds = dataset(ctx);
    const { vocab, digest } = vocabulary(ctx);
    const m = loadModel(ctx.resolve(String(ctx.params.model)));
    const p = ctx.params as unknown as TrainParams & { tasks: string[]; target?: string; mixing?: 'size' | 'temperature'; temperature?: number };
    for (const t of [...p.tasks, ...(p.target ? [p.target] : [])]) {
      if (!ds.manifest.tasks[t]) throw new Error(`task "${t}" is not in the dataset; it has ${Object.keys(ds.manifest.tasks).join(', ')}`);
    }
    const r = train(tf, m, ds, vocab, {
      tasks: p.tasks, target: p.target, epochs: p.epochs ?? 5, lr: p.lr ?? 0.01, batchSize: p.batch_size ?? 32, seed: p.seed ?? 0,
      mixing: p.mixing ?? 'size', temperature: p.temperature ?? 2, patience: p.patience ?? 2, maxTrain: p.max_train,
    }, ctx.log);
    saveModel(ctx.outs.model!, { cfg: m.cfg, weights: r.weights, vocab: digest, history: r.history });
    return { metrics: { epochs: r.history.length, ...(r.best ? { dev_score: r.best.score, dev_loss: r.best.loss } : {}) } };
  },
};
