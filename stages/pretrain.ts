import { MODEL_INPUTS } from '../src/ml/schema-parts.js';
import { defineStage, pathInputs, StageInputError } from '../src/stage-type.js';

/**
 * Self-supervised pretraining of a base model's encoder on the dataset's unlabelled corpus
 * (its training pools' dialogues; never a test dialogue): masked tokens predicted from their
 * context. `epochs: 0` passes the model through unchanged, so a pipeline can switch it by param.
 */
export const pretrain = defineStage({
  name: 'pretrain',
  version: 1,
  description: "Pretrain a base model's encoder on the dataset's unlabelled dialogue text (masked tokens)",
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'model'],
    properties: {
      ...MODEL_INPUTS,
      epochs: { type: 'integer', minimum: 0, default: 2, description: 'Passes over the corpus (0: the model unchanged)' },
      lr: { type: 'number', exclusiveMinimum: 0, default: 0.003, description: 'Adam learning rate' },
      batch_size: { type: 'integer', minimum: 1, default: 32, description: 'Windows per batch' },
      mask_rate: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.15, description: "Share of a window's dialogue tokens masked and predicted" },
      max_windows: { type: 'integer', minimum: 1, description: 'Use at most this many windows of the corpus (seeded draw)' },
      seed: { type: 'integer', default: 0, description: 'Seed of windows, masks and batch order' },
    },
  },
  inputs: (p) => pathInputs(p, ['data', 'vocab', 'model']),
  outputs: () => ({ model: 'dir' }),
  async run(ctx) {
    const [{ dataset, tfFor, vocabulary }, { loadModel, saveModel }, { pretrain: pretrainModel }] = await Promise.all([
      import('../src/ml/stage-support.js'), import('../src/ml/train.js'), import('../src/ml/pretrain.js'),
    ]);
    const p = ctx.params;
    const m = loadModel(ctx.resolve(ctx.params.model));
    if (Object.keys(m.cfg.tasks).length > 0) throw new StageInputError(`${ctx.params.model} already has task heads (${Object.keys(m.cfg.tasks).join(', ')}): pretrain a base model (init-model) before any expert`);
    const { vocab, digest } = vocabulary(ctx);
    if (m.vocab !== digest) throw new StageInputError(`${ctx.params.model} was built with another vocabulary than ${ctx.params.vocab}`);
    if (p.epochs === 0) {
      saveModel(ctx.outs.model!, m);
      return { metrics: { epochs: 0 } as Record<string, number> };
    }
    const corpus = dataset(ctx).corpus();
    if (corpus.length === 0) throw new StageInputError(`${ctx.params.data} has no unlabelled corpus (corpus.txt): build it again with prepare-data`);
    const tf = await tfFor(ctx);
    const r = pretrainModel(tf, m, corpus, vocab, { epochs: p.epochs, lr: p.lr, batchSize: p.batch_size, seed: p.seed, maskRate: p.mask_rate, maxWindows: p.max_windows }, ctx.log);
    saveModel(ctx.outs.model!, { cfg: m.cfg, weights: r.weights, vocab: digest, history: r.history });
    return { metrics: { epochs: p.epochs, windows: r.history[0]!.windows, loss: r.history.at(-1)!.loss } };
  },
});
