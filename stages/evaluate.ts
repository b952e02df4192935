import { writeFileSync } from 'node:fs';
import { MODEL_INPUTS, PATH } from '../src/ml/schema-parts.js';
import { defineStage, pathInputs, StageInputError } from '../src/stage-type.js';

/**
 * Test (or dev) metrics of a model per task, as TLiDB defines them, into metrics.json. A list of
 * models is scored as their output ensemble (a reference point beside a weight merge).
 */
export const evaluate = defineStage({
  name: 'evaluate',
  version: 3,
  description: 'Score a model on tasks (deterministic decoding) → metrics.json',
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'model', 'tasks'],
    properties: {
      ...MODEL_INPUTS,
      model: { anyOf: [PATH, { type: 'array', minItems: 1, items: PATH }], description: 'The model to score; a list of models (one architecture, one vocabulary) is scored as the average of their outputs' },
      tasks: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'Tasks to score (the model needs a head for each)' },
      split: { enum: ['dev', 'test'], default: 'test' },
    },
  },
  reportsMetrics: true,
  inputs: (p) => pathInputs(p, ['data', 'vocab', 'model']),
  outputs: () => ({ metrics: 'file' }),
  async run(ctx) {
    const [{ dataset, tfFor, vocabulary }, { evaluate: evaluateTask, loadModel, toVars }] = await Promise.all([import('../src/ml/stage-support.js'), import('../src/ml/train.js')]);
    const tf = await tfFor(ctx);
    const ds = dataset(ctx);
    const { vocab } = vocabulary(ctx);
    const paths = ([] as string[]).concat(ctx.params.model);
    const models = paths.map((path) => loadModel(ctx.resolve(path)));
    const m = models[0]!;
    models.forEach((other, i) => {
      if (other.vocab !== m.vocab) throw new StageInputError(`${paths[i]} was built with another vocabulary than ${paths[0]}`);
      if (JSON.stringify({ ...other.cfg, tasks: {} }) !== JSON.stringify({ ...m.cfg, tasks: {} })) throw new StageInputError(`${paths[i]} has another architecture than ${paths[0]}: an output ensemble needs one`);
    });
    const split = ctx.params.split;
    const vars = models.map((x, i) => toVars(tf, x.weights, `model${i}/`));
    const results: Record<string, unknown> = {};
    const flat: Record<string, number> = {};
    for (const task of ctx.params.tasks) {
      models.forEach((x, i) => {
        if (!x.cfg.tasks[task]) throw new StageInputError(`${models.length > 1 ? paths[i] : 'the model'} has no head for task "${task}" (it has ${Object.keys(x.cfg.tasks).join(', ') || 'none'}): finetune it on that task first`);
      });
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
});
