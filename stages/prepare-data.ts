import { generateSynthetic, SYNTHETIC_TASKS } from '../src/ml/data/synthetic.js';
import { writeDataset } from '../src/ml/data/dataset-io.js';
import type { StageType } from '../src/stage-type.js';

interface Params {
  source: 'synthetic';
  seed?: number;
  scenes?: number;
  train?: number;
  dev?: number;
  test?: number;
  train_per_task?: Record<string, number>;
  tasks?: string[];
}

/** Builds a dataset directory (dataset.json, dialogues.jsonl, TASK.SPLIT.jsonl) from a source. */
export const prepareData: StageType = {
  name: 'prepare-data',
  version: 1,
  description: 'Build a multi-task dialogue dataset: the generated synthetic corpus',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['source'],
    properties: {
      source: { enum: ['synthetic'], description: 'synthetic: a generated corpus, deterministic from `seed` (no download)' },
      seed: { type: 'integer', description: 'Seed of the synthetic corpus', default: 0 },
      scenes: { type: 'integer', minimum: 10, description: 'Synthetic scenes to generate (split 70/15/15 by scene)', default: 1500 },
      train: { type: 'integer', minimum: 0, description: 'Training examples per task', default: 400 },
      dev: { type: 'integer', minimum: 0, description: 'Dev examples per task', default: 200 },
      test: { type: 'integer', minimum: 0, description: 'Test examples per task', default: 400 },
      train_per_task: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 }, description: 'Training examples for particular tasks (few-shot targets)' },
      tasks: { type: 'array', items: { enum: SYNTHETIC_TASKS.map((t) => t.name) }, description: 'Only these tasks (default: all)' },
    },
  },
  outputs: () => ({ data: 'dir' }),
  async run(ctx) {
    const p = ctx.params as unknown as Params;
    const sizes = { train: p.train ?? 400, dev: p.dev ?? 200, test: p.test ?? 400 };
    const { tasks, dialogues, examples } = generateSynthetic({
      seed: p.seed ?? 0, scenes: p.scenes ?? 1500, sizes, trainPerTask: p.train_per_task, tasks: p.tasks,
    });
    const manifest = writeDataset(ctx.outs.data!, 'synthetic', tasks, dialogues, examples, { seed: p.seed ?? 0, scenes: p.scenes ?? 1500, sizes, train_per_task: p.train_per_task ?? {} });
    for (const [task, c] of Object.entries(manifest.counts)) ctx.log(`${task}: ${c.train} train, ${c.dev} dev, ${c.test} test`);
    ctx.log(`${manifest.dialogues} dialogues`);
    return { metrics: { dialogues: manifest.dialogues } };
  },
};
