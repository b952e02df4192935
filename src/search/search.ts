import { better, optimizers, type OptimizerName, type OptimizerOptions, type Value } from './optimizers.js';
import { pointKey, type CoefficientSpace, type Weights } from './space.js';

export interface Evaluated {
  weights: Weights;
  value: Value;
  ms: number;
  /** Which phase asked for it: a vertex (one model alone) or the optimizer. */
  source: 'vertex' | 'optimizer';
}

export interface SearchResult {
  best: Evaluated;
  trace: Evaluated[];
  /** Distinct points evaluated (cache hits are not counted). */
  evaluations: number;
}

/**
 * Evaluate every vertex (each model alone) first, then what the optimizer asks for, up to the
 * evaluation cap; repeated points come from a cache. The best point over everything evaluated
 * wins, so the result is never worse than the best single model.
 */
export async function search(space: CoefficientSpace, name: OptimizerName, evaluate: (w: Weights) => Promise<Value> | Value, opts: OptimizerOptions): Promise<SearchResult> {
  const cache = new Map<string, Value>();
  const trace: Evaluated[] = [];
  const run = async (weights: Weights, source: Evaluated['source']): Promise<Value> => {
    const key = pointKey(weights);
    const hit = cache.get(key);
    if (hit) return hit;
    const t0 = performance.now();
    const value = await evaluate(weights);
    cache.set(key, value);
    trace.push({ weights, value, ms: performance.now() - t0, source });
    return value;
  };
  const vertices: Value[] = [];
  for (const v of space.vertices()) vertices.push(await run(v, 'vertex'));
  const kind = optimizers.get(name)!;
  if (kind.simplexOnly && space.domain !== 'simplex') throw new Error(`internal: ${name} needs simplex weights`);
  const gen = kind.start(space, opts, vertices);
  let step = gen.next();
  while (!step.done && cache.size < opts.maxEvals) step = gen.next(await run(step.value, 'optimizer'));
  let best = trace[0]!;
  for (const t of trace) if (better(t.value, best.value)) best = t;
  return { best, trace, evaluations: trace.length };
}
