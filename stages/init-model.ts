import type { EncoderKind, ModelConfig } from '../src/ml/model.js';
import { PATH } from '../src/ml/schema-parts.js';
import { defineStage, pathInputs, StageInputError } from '../src/stage-type.js';

/**
 * The base model every DFWE model starts from: a seeded encoder (heads come later, per task).
 * Its weights come from dfwe's own generator, so they are the same bytes on every backend.
 */
export const initModel = defineStage({
  name: 'init-model',
  version: 1,
  description: 'A seeded base model (encoder only) that every expert and finetune starts from',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['vocab'],
    properties: {
      vocab: { ...PATH, description: 'The vocabulary (output of vocab)' },
      encoder: { enum: ['cnn', 'bow', 'transformer'], default: 'cnn', description: 'cnn: a convolution over tokens (default); bow: a per-token dense layer; transformer: self-attention layers, for the GPU backend (slow on wasm)' },
      layers: { type: 'integer', minimum: 1, default: 2, description: 'transformer layers' },
      heads: { type: 'integer', minimum: 1, default: 4, description: 'transformer attention heads (divide hidden)' },
      embed_dim: { type: 'integer', minimum: 4, default: 64 },
      hidden: { type: 'integer', minimum: 4, default: 96 },
      kernel: { type: 'integer', minimum: 1, default: 3, description: 'cnn window width' },
      max_len: { type: 'integer', minimum: 16, default: 128, description: 'Tokens per example; longer dialogues are cut around the turn asked about' },
      item_heads: { type: 'boolean', default: false, description: 'Span (QA) and choice (reading comprehension) heads read the item: token and candidate scores conditioned on the pooled question or query, and a candidate is also where the dialogue names it' },
      seed: { type: 'integer', default: 0 },
    },
  },
  inputs: (p) => pathInputs(p, ['vocab']),
  outputs: () => ({ model: 'dir' }),
  async run(ctx) {
    const [{ initEncoder }, { vocabulary }, { saveModel }] = await Promise.all([import('../src/ml/model.js'), import('../src/ml/stage-support.js'), import('../src/ml/train.js')]);
    const { vocab, digest } = vocabulary(ctx);
    const p = ctx.params;
    const cfg: ModelConfig = {
      encoder: p.encoder as EncoderKind,
      vocabSize: vocab.tokens.length,
      embedDim: Number(p.embed_dim),
      hidden: Number(p.hidden),
      kernel: Number(p.kernel),
      maxLen: Number(p.max_len),
      // Absent rather than false: a base without it is the same model.json as before the option.
      ...(p.item_heads === true ? { itemHeads: true } : {}),
      ...(p.encoder === 'transformer' ? { layers: Number(p.layers), heads: Number(p.heads) } : {}),
      seed: Number(p.seed),
      tasks: {},
    };
    if (cfg.encoder === 'transformer' && cfg.hidden % (cfg.heads ?? 4) !== 0) throw new StageInputError(`hidden (${cfg.hidden}) must be a multiple of heads (${cfg.heads})`);
    const weights = initEncoder(cfg);
    saveModel(ctx.outs.model!, { cfg, weights, vocab: digest });
    const params = [...weights.values()].reduce((a, t) => a + t.data.length, 0);
    ctx.log(`${cfg.encoder} encoder, ${params} parameters`);
    return { metrics: { parameters: params } };
  },
});
