import { writeFileSync } from 'node:fs';
import { optimizerSchema } from '../src/search/optimizers.js';
import { PATH } from '../src/ml/schema-parts.js';
import { defineStage, pathInputs, StageInputError } from '../src/stage-type.js';

/**
 * DFWE's merge: θ(α) = Σ αᵢ θᵢ over k finetuned models, with α on the simplex chosen by a
 * derivative-free optimizer on the target's dev score (ties broken by dev loss). The merged
 * model keeps the tensors the target needs: embeddings, encoder, and the target's head.
 */
export const interpolate = defineStage({
  name: 'interpolate',
  version: 3,
  description: "Interpolate finetuned models' weights with α chosen on the target's dev score",
  mlRuntime: true,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['data', 'vocab', 'models', 'task'],
    properties: {
      data: { ...PATH, description: 'The dataset' },
      vocab: { ...PATH, description: 'The vocabulary' },
      models: { type: 'array', minItems: 1, items: PATH, description: 'The finetuned models (one initialisation, one architecture)' },
      task: { type: 'string', description: 'The target task: its dev score is what α maximises' },
      optimizer: optimizerSchema(),
      iterations: { type: 'integer', minimum: 0, default: 40, description: 'Nelder–Mead iterations (the paper: 40)' },
      max_evals: { type: 'integer', minimum: 1, default: 100, description: 'Cap on distinct evaluations, vertices included' },
      step: { type: 'number', exclusiveMinimum: 0, default: 2, description: 'Nelder–Mead initial simplex size in logit space' },
      seed: { type: 'integer', default: 0, description: 'Seed of the random optimizer' },
    },
  },
  inputs: (p) => pathInputs(p, ['data', 'vocab', 'models']),
  outputs: () => ({ model: 'dir', search: 'file' }),
  async run(ctx) {
    const [{ Merger }, { search }, { CoefficientSpace }, { dataset, tfFor, vocabulary }, { evaluate, loadModel, prepare, saveModel, toVars }] = await Promise.all([
      import('../src/ml/merge.js'), import('../src/search/search.js'), import('../src/search/space.js'), import('../src/ml/stage-support.js'), import('../src/ml/train.js'),
    ]);
    const tf = await tfFor(ctx);
    const ds = dataset(ctx);
    const { vocab, digest } = vocabulary(ctx);
    const p = ctx.params;
    const models = p.models.map((m) => loadModel(ctx.resolve(m)));
    models.forEach((m, i) => {
      if (m.vocab !== models[0]!.vocab) throw new StageInputError(`${p.models[i]} was built with another vocabulary than ${p.models[0]}`);
      if (!m.cfg.tasks[p.task]) throw new StageInputError(`${p.models[i]} has no head for "${p.task}": finetune every model on the target first`);
    });
    const wanted = (n: string): boolean => !n.startsWith('head.') || n.startsWith(`head.${p.task}.`);
    const merger = new Merger(models.map((m) => m.weights), wanted, p.models);
    const cfg = { ...models[0]!.cfg, tasks: { [p.task]: models[0]!.cfg.tasks[p.task]! } };
    const vars = toVars(tf, merger.merge(models.map((_, i) => (i === 0 ? 1 : 0))));
    // Encoded once: every evaluation of the search scores the same dev examples.
    const dev = prepare(ds, vocab, p.task, 'dev', cfg);
    ctx.log(`${models.length} models, ${merger.tensorNames.length} tensors; ${p.optimizer} on ${p.task} dev (${dev.examples.length} examples)`);
    const k = models.length;
    const result = await search(new CoefficientSpace(1, k, 'simplex'), p.optimizer, ([alpha]) => {
      const w = merger.merge(alpha!);
      for (const [name, t] of w) {
        const value = tf.tensor(t.data, t.shape);
        vars.get(name)!.assign(value);
        value.dispose();
      }
      const r = evaluate(tf, cfg, vars, ds, vocab, p.task, 'dev', 64, dev);
      ctx.log(`α=[${alpha!.map((a) => a.toFixed(3)).join(', ')}]  dev ${r.score.toFixed(2)}  loss ${r.loss.toFixed(4)}`);
      return { score: r.score, loss: r.loss };
    }, { iterations: p.iterations, maxEvals: p.max_evals, step: p.step, seed: p.seed, center: new Array(k).fill(1 / k) });
    vars.forEach((v) => v.dispose());
    const bestAlpha = result.best.weights[0]!;
    merger.merge(bestAlpha);
    saveModel(ctx.outs.model!, { cfg, weights: merger.copy(), vocab: digest, history: { alpha: bestAlpha, dev: result.best.value } });
    const bestVertex = result.trace.filter((t) => t.source === 'vertex').reduce((a, t) => (t.value.score > a ? t.value.score : a), -Infinity);
    writeFileSync(ctx.outs.search!, JSON.stringify({
      optimizer: p.optimizer, models: p.models, alpha: bestAlpha, dev_score: result.best.value.score, dev_loss: result.best.value.loss,
      best_single_dev_score: bestVertex, evaluations: result.evaluations,
      trace: result.trace.map((t) => ({ alpha: t.weights[0], dev_score: t.value.score, dev_loss: t.value.loss, ms: Math.round(t.ms), source: t.source })),
    }, null, 2) + '\n');
    ctx.log(`best α=[${bestAlpha.map((a) => a.toFixed(3)).join(', ')}] dev ${result.best.value.score.toFixed(2)} (best single model ${bestVertex.toFixed(2)}) after ${result.evaluations} evaluations`);
    return { metrics: { dev_score: result.best.value.score, best_single_dev_score: bestVertex, evaluations: result.evaluations } };
  },
});
