import { dataset, PATH, TRAIN_PARAMS, tfFor, vocabulary, type TrainParams } from '../src/ml/stage-support.js';
import { loadModel, saveModel, train } from '../src/ml/train.js';
import type { StageType } from '../src/stage-type.js';

/** Finetune a model (an expert, or the base) on one task, stopping early on its dev score. */
export const finetune: StageType = {
  name: 'finetune',
  version: 1,
  description: 'Finetune a model on one task; a head the model lacks is initialised deterministically',
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'model', 'task'],
    properties: {
      data: { ...PATH, description: 'The dataset' },
      vocab: { ...PATH, description: 'The vocabulary' },
      model: { ...PATH, description: 'The model to finetune' },
      task: { type: 'string', description: 'The task' },
      ...TRAIN_PARAMS,
    },
  },
  outputs: () => ({ model: 'dir' }),
  async run(ctx) {
    const tf = await tfFor(ctx);
    const ds = dataset(ctx);
    const { vocab, digest } = vocabulary(ctx);
    const m = loadModel(ctx.resolve(String(ctx.params.model)));
    const p = ctx.params as unknown as TrainParams & { task: string };
    if (!ds.manifest.tasks[p.task]) throw new Error(`task "${p.task}" is not in the dataset; it has ${Object.keys(ds.manifest.tasks).join(', ')}`);
    const r = train(tf, m, ds, vocab, {
      tasks: [p.task], target: p.task, epochs: p.epochs ?? 5, lr: p.lr ?? 0.01, batchSize: p.batch_size ?? 32, seed: p.seed ?? 0,
      mixing: 'size', temperature: 1, patience: p.patience ?? 2, maxTrain: p.max_train,
    }, ctx.log);
    saveModel(ctx.outs.model!, { cfg: m.cfg, weights: r.weights, vocab: digest, history: r.history });
    return { metrics: { epochs: r.history.length, ...(r.best ? { dev_score: r.best.score, dev_loss: r.best.loss } : {}) } };
  },
};
