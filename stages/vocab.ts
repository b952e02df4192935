import { PATH } from '../src/ml/schema-parts.js';
import { defineStage, pathInputs } from '../src/stage-type.js';

/** The vocabulary of a dataset's training text: one node, shared by every model that uses it. */
export const vocab = defineStage({
  name: 'vocab',
  version: 1,
  description: 'Build the vocabulary (speakers, then words by frequency) from a dataset\'s training text',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data'],
    properties: {
      data: { ...PATH, description: 'The dataset (output of prepare-data)' },
      max_size: { type: 'integer', minimum: 16, default: 8000, description: 'At most this many tokens' },
      min_count: { type: 'integer', minimum: 1, default: 1, description: 'Words seen fewer times are [UNK]' },
    },
  },
  inputs: (p) => pathInputs(p, ['data']),
  outputs: () => ({ vocab: 'file' }),
  async run(ctx) {
    const [{ buildVocab }, { dataset, writeVocab }] = await Promise.all([import('../src/ml/vocab.js'), import('../src/ml/stage-support.js')]);
    const v = buildVocab(dataset(ctx), ctx.params.max_size, ctx.params.min_count);
    writeVocab(ctx.outs.vocab!, v);
    ctx.log(`${v.tokens.length} tokens`);
    return { metrics: { tokens: v.tokens.length } };
  },
});
