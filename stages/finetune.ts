import { MODEL_INPUTS, TRAIN_PARAMS } from '../src/ml/schema-parts.js';
import {  defineStage, pathInputs  } from '../src/stage-type.js';

/** Finetune a model (an expert, or the base) on one task, stopping early on its dev score. */
export const finetune = defineStage({
  name: 'finetune',
  version: 3,
  description: 'Finetune a model on one task; a head the model lacks is initialised deterministically',
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'model', 'task'],
    properties: {
      ...MODEL_INPUTS,
      task: { type: 'string', description: 'The task' },
      ...TRAIN_PARAMS,
    },
  },
  inputs: (p) => pathInputs(p, ['data', 'vocab', 'model']),
  outputs: () => ({ model: 'dir' }),
  async run(ctx) {
    const { trainStage } = await import('../src/ml/stage-support.js');
    const task = ctx.params.task;
    return trainStage(ctx, { tasks: [task], target: task, mixing: 'size', temperature: 1 });
  },
});
