import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mergeMethods } from '../src/merge/methods/index.js';
import { modelCountProblem } from '../src/merge/method.js';
import { completeParams } from '../src/merge/params.js';
import { optimizerSchema, optimizers } from '../src/search/optimizers.js';
import type { Weights } from '../src/search/space.js';
import { defineStage, pathInputs } from '../src/stage-type.js';
import { MERGE_PROPERTIES, METHOD_PARAMS } from './merge.js';

/** What merge takes, less its fixed weights: here the search sets them. */
const { weights: _fixed, ...mergeProperties } = MERGE_PROPERTIES;

/**
 * DFWE with any model and any evaluator: search a merge method's weights (one set per group of
 * tensors, optionally) with a derivative-free optimizer, scoring each candidate checkpoint with
 * the user's own command. The best candidate is the `model` output; `search` records every one.
 */
export const mergeSearch = defineStage({
  name: 'merge-search',
  version: 1,
  description: "Search a merge method's weights with your own evaluator (a command or a JSON-lines server): every model alone first, then the optimizer; the best merge is the output",
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['models'],
    properties: {
      ...mergeProperties,
      groups: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'One set of weights per group of tensors (globs, first match wins; the other tensors make one more group), as mergekit-evolve searches per layer' },
      optimizer: optimizerSchema(),
      iterations: { type: 'integer', minimum: 0, default: 40, description: 'Nelder–Mead iterations (the paper: 40)' },
      max_evals: { type: 'integer', minimum: 1, default: 100, description: 'Cap on distinct evaluations, every model alone included' },
      step: { type: 'number', exclusiveMinimum: 0, default: 2, description: "Nelder–Mead's initial simplex size (CMA-ES: twice its initial step), in logit space" },
      seed: { type: 'integer', default: 0, description: 'Seed of cma-es and random' },
      score: { type: 'string', minLength: 1, description: 'Run per candidate (a shell command); {model} becomes its checkpoint\'s path, also in $DFWE_MODEL. It prints one JSON line {"score": …, "loss": …} (higher score is better; loss breaks ties). List its scripts under the stage\'s deps' },
      score_server: { type: 'string', minLength: 1, description: 'Started once; reads {"model": PATH, "candidate": N} lines on stdin and answers each with one {"score": …} line on stdout, so it loads its data once' },
      score_timeout: { type: 'number', exclusiveMinimum: 0, default: 3600, description: 'Seconds a candidate may take to be scored' },
      score_retries: { type: 'integer', minimum: 0, default: 0, description: 'Times a candidate is scored again after the evaluator fails on it (a server is started again), for transient failures: an out-of-memory, a lost GPU. 0: the first failure fails the search (which resumes on the next run)' },
    },
    allOf: METHOD_PARAMS,
  },
  outputs: () => ({ model: 'dir', search: 'file' }),
  // The evaluator's scripts named in its command are part of the key, as deps are: editing the
  // scorer reruns the search. (Modules they import go in the stage's deps.)
  inputs: (p) => pathInputs(p, ['models', 'base']),
  commands: (p) => (['score', 'score_server'] as const).flatMap((field) => { const text = p[field]; return text === undefined ? [] : [{ field, text }]; }),
  complete(p) {
    const method = mergeMethods.get(p.method)!;
    const problems = completeParams(method, p.params);
    const k = p.models.length;
    if (method.needsBase && p.base === undefined) problems.push(`method ${method.name} needs "base": the model its task vectors are taken against`);
    const count = modelCountProblem(method, k);
    if (count) problems.push(count);
    if ((p.score === undefined) === (p.score_server === undefined)) problems.push('give exactly one of "score" (a command run per candidate) or "score_server" (a process that answers JSON lines)');
    if (optimizers.get(p.optimizer)?.simplexOnly && method.domain !== 'simplex') problems.push(`${p.optimizer} averages models; method ${method.name}'s weights are not on the simplex: use nelder-mead, cma-es or random`);
    return problems;
  },
  async run(ctx) {
    const [{ planMerge, writeMerge, closeMerge }, { openScorer }, { search }, { CoefficientSpace }, { ScoreJournal }, { candidatePlace }] = await Promise.all([
      import('../src/merge/engine.js'), import('../src/search/scorer.js'), import('../src/search/search.js'), import('../src/search/space.js'), import('../src/search/journal.js'), import('../src/search/candidate-place.js'),
    ]);
    const p = ctx.params;
    const method = mergeMethods.get(p.method)!;
    const k = p.models.length;
    const plan = planMerge({ models: p.models.map(ctx.resolve), base: p.base === undefined ? undefined : ctx.resolve(p.base), method, params: p.params, include: p.include, exclude: p.exclude, groups: p.groups, labels: p.models });
    const space = new CoefficientSpace(plan.groupNames.length, k, method.domain);
    const open = (): ReturnType<typeof openScorer> => openScorer({ command: p.score, server: p.score_server, timeoutMs: p.score_timeout * 1000, cwd: ctx.workspace, env: process.env, log: ctx.note });
    let scorer = open();
    const scoreOnce = async (dir: string, c: number): Promise<{ score: number; loss: number }> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await scorer.score(dir, c);
        } catch (err) {
          if (attempt >= p.score_retries) throw err;
          ctx.log(`candidate ${c}: ${(err as Error).message.replace(/\s*\n\s*/g, ' ').slice(0, 400)}; scoring it again (${attempt + 1} of ${p.score_retries})`);
          await scorer.close().catch(() => undefined);
          scorer = open();
        }
      }
    };
    ctx.log(`${method.name} over ${k} models, ${plan.groupOf.size} tensors in ${plan.groupNames.length} group${plan.groupNames.length === 1 ? '' : 's'}; ${p.optimizer}, at most ${p.max_evals} candidates`);
    const show = (w: Weights): string => w.map((g) => `[${g.map((x) => x.toFixed(3)).join(', ')}]`).join(' ');
    let candidate = 0;
    // Candidates are written where it costs least (RAM when it has room), and what each costs is kept.
    const candidateBytes = [...plan.models[0]!.tensors.values()].reduce((a, t) => a + t.bytes, 0);
    const place = candidatePlace(ctx.scratch, candidateBytes);
    ctx.log(`candidates in ${place.where}`);
    const cost = { merge: [] as number[], score: [] as number[] };
    // What an earlier attempt of this node scored is not scored again (a killed or failed search).
    const journal = new ScoreJournal(ctx.resume);
    if (journal.size) ctx.log(`resuming: ${journal.size} candidate${journal.size === 1 ? '' : 's'} scored by an earlier attempt`);
    const evaluate = async (w: Weights) => {
      const known = journal.get(w);
      if (known) {
        ctx.log(`candidate ${candidate}: ${show(w)}  score ${known.score}  loss ${known.loss}  (scored before)`);
        candidate++;
        return known;
      }
      const dir = join(place.dir, `candidate-${candidate}`);
      const t0 = performance.now();
      await writeMerge(plan, w, dir, { threads: ctx.threads });
      const t1 = performance.now();
      cost.merge.push(t1 - t0);
      try {
        const v = await scoreOnce(dir, candidate);
        cost.score.push(performance.now() - t1);
        journal.add(w, v);
        ctx.log(`candidate ${candidate}: ${show(w)}  score ${v.score}  loss ${v.loss}`);
        return v;
      } finally {
        rmSync(dir, { recursive: true, force: true });
        candidate++;
      }
    };
    let result;
    try {
      result = await search(space, p.optimizer, evaluate, { iterations: p.iterations, maxEvals: p.max_evals, step: p.step, seed: p.seed, center: method.defaultWeights(k) });
    } finally {
      journal.close();
      await scorer.close();
      await closeMerge(plan);
      place.release();
    }
    await writeMerge(plan, result.best.weights, ctx.outs.model!, { threads: ctx.threads });
    const bestSingle = result.trace.filter((t) => t.source === 'vertex').reduce((a, t) => Math.max(a, t.value.score), -Infinity);
    writeFileSync(ctx.outs.search!, JSON.stringify({
      method: method.name, optimizer: p.optimizer, models: p.models, groups: plan.groupNames,
      weights: result.best.weights, score: result.best.value.score, loss: result.best.value.loss, best_single_score: bestSingle, evaluations: result.evaluations,
      candidates: {
        written_to: place.where, bytes: candidateBytes, merged: cost.merge.length,
        merge_and_write_ms: msStats(cost.merge), score_ms: msStats(cost.score),
        overhead_vs_score: cost.score.length ? round3(mean(cost.merge) / mean(cost.score)) : null,
      },
      trace: result.trace.map((t) => ({ weights: t.weights, score: t.value.score, loss: t.value.loss, ms: Math.round(t.ms), source: t.source })),
    }, null, 2) + '\n');
    ctx.log(`best ${show(result.best.weights)} score ${result.best.value.score} (best single model ${bestSingle}) after ${result.evaluations} candidates`);
    if (cost.merge.length) ctx.log(`per candidate: merge and write ${mean(cost.merge).toFixed(0)} ms, score ${cost.score.length ? mean(cost.score).toFixed(0) : '-'} ms (${place.where})`);
    return { metrics: { score: result.best.value.score, loss: result.best.value.loss, best_single_score: bestSingle, evaluations: result.evaluations } };
  },
});

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Milliseconds as mean, min and max (null when nothing was measured). */
function msStats(xs: number[]): { mean: number; min: number; max: number } | null {
  return xs.length ? { mean: round3(mean(xs)), min: round3(xs.reduce((a, b) => Math.min(a, b))), max: round3(xs.reduce((a, b) => Math.max(a, b))) } : null;
}
