import { writeFileSync } from 'node:fs';
import { MODEL_INPUTS } from './schema-parts.js';
import type { StageType } from '../src/stage-type.js';
import { StageInputError } from '../src/stage-type.js';

/** Test (or dev) metrics of a model per task, as TLiDB defines them, into metrics.json. */
export const evaluate: StageType = {
  name: 'evaluate',
  version: 2,
  description: 'Score a model on tasks (deterministic decoding) → metrics.json',
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'model', 'tasks'],
    properties: {
      ...MODEL_INPUTS,
      model: { type: 'string', minLength: 1, description: 'The model to score' },
      tasks: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'Tasks to score (the model needs a head for each)' },
      split: { enum: ['dev', 'test'], default: 'test' },
    },
  },
  outputs: () => ({ metrics: 'file' }),
  async run(ctx) {
    const [{ dataset, tfFor, vocabulary }, { evaluate: evaluateTask, loadModel, toVars }] = await Promise.all([import('../src/ml/stage-support.js'), import('../src/ml/train.js')]);
    const tf = await tfFor(ctx);
    const ds = dataset(ctx);
    const { vocab } = vocabulary(ctx);
    const m = loadModel(ctx.resolve(String(ctx.params.model)));
    const split = ctx.params.split as 'dev' | 'test';
    const vars = toVars(tf, m.weights);
    const results: Record<string, unknown> = {};
    const flat: Record<string, number> = {};
    for (const task of ctx.params.tasks as string[]) {
      if (!m.cfg.tasks[task]) throw new StageInputError(`the model has no head for task "${task}" (it has ${Object.keys(m.cfg.tasks).join(', ') || 'none'}): finetune it on that task first`);
      const t0 = performance.now();
      const r = evaluateTask(tf, m.cfg, vars, ds, vocab, task, split);
      const secs = (performance.now() - t0) / 1000;
      // Timings stay in the log: the metrics file depends only on the model and the data.
      results[task] = r;
      flat[`${task}.score`] = r.score;
      ctx.log(`${task} ${split}: score ${r.score.toFixed(2)} ${JSON.stringify(r.metrics)} (${r.examples} examples, ${(r.examples / secs).toFixed(0)}/s)`);
    }
    writeFileSync(ctx.outs.metrics!, JSON.stringify({ split, tasks: results }, null, 2) + '\n');
    return { metrics: flat };
  },
};
