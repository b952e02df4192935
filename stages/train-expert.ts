import { MODEL_INPUTS, TRAIN_PARAMS } from '../src/ml/schema-parts.js';
import { defineStage, pathInputs } from '../src/stage-type.js';

/**
 * An expert: the base model trained on one task or several (multi-task batches mixed by size or
 * temperature). With a `target`, training stops early on the target's dev score.
 */
export const trainExpert = defineStage({
  name: 'train-expert',
  version: 3,
  description: 'Train a model on a set of tasks, from a base model',
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'model', 'tasks'],
    properties: {
      ...MODEL_INPUTS,
      tasks: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'Tasks to train on' },
      target: { type: 'string', description: "Stop early on this task's dev score (keeps the best epoch)" },
      mixing: { enum: ['size', 'temperature'], default: 'size', description: 'How batches of several tasks mix' },
      temperature: { type: 'number', exclusiveMinimum: 0, default: 2, description: 'With mixing: temperature, task weight = size^(1/temperature)' },
      ...TRAIN_PARAMS,
    },
  },
  inputs: (p) => pathInputs(p, ['data', 'vocab', 'model']),
  outputs: () => ({ model: 'dir' }),
  async run(ctx) {
    const { trainStage } = await import('../src/ml/stage-support.js');
    const p = ctx.params;
    return trainStage(ctx, { tasks: p.tasks, target: p.target, mixing: p.mixing, temperature: p.temperature });
  },
});
