import { Rng } from './random.js';

/*
 * Derivative-free search for interpolation weights α on the simplex (αᵢ ≥ 0, Σαᵢ = 1). Every
 * optimizer is a generator behind one ask/tell interface: it yields the next α to evaluate and
 * receives its value. Values compare by dev score, ties broken by dev loss; Nelder–Mead needs
 * nothing but these comparisons.
 */

export interface Value {
  score: number;
  loss: number;
}

export function better(a: Value, b: Value): boolean {
  return a.score > b.score || (a.score === b.score && a.loss < b.loss);
}

export type Optimizer = Generator<number[], void, Value>;

export interface SearchOptions {
  iterations: number;
  /** Largest number of distinct evaluations (vertices included). */
  maxEvals: number;
  /** Nelder–Mead: size of the initial simplex in logit space. */
  step: number;
  seed: number;
}

/** α = softmax([0, z₁ … z_{k-1}]): one logit fixed, so z is unconstrained. */
export function softmaxAlpha(z: number[]): number[] {
  const logits = [0, ...z];
  const m = Math.max(...logits);
  const e = logits.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** Nelder–Mead in logit space, from uniform α with a large initial simplex. */
export function* nelderMead(k: number, opts: SearchOptions): Optimizer {
  const n = k - 1;
  if (n <= 0) return;
  const at = (z: number[]): number[] => softmaxAlpha(z);
  let simplex: { z: number[]; v: Value }[] = [];
  for (let i = 0; i <= n; i++) {
    const z = new Array(n).fill(0);
    if (i > 0) z[i - 1] = opts.step;
    simplex.push({ z, v: yield at(z) });
  }
  const comb = (a: number[], b: number[], t: number): number[] => a.map((x, i) => x + t * (b[i]! - x)); // a + t(b − a)
  for (let iter = 0; iter < opts.iterations; iter++) {
    simplex.sort((p, q) => (better(p.v, q.v) ? -1 : better(q.v, p.v) ? 1 : 0));
    const best = simplex[0]!;
    const worst = simplex[n]!;
    const second = simplex[n - 1]!;
    const centroid = new Array(n).fill(0).map((_, i) => simplex.slice(0, n).reduce((a, p) => a + p.z[i]!, 0) / n);
    const zr = comb(centroid, worst.z, -1); // reflect
    const vr: Value = yield at(zr);
    if (better(vr, best.v)) {
      const ze = comb(centroid, worst.z, -2); // expand
      const ve: Value = yield at(ze);
      simplex[n] = better(ve, vr) ? { z: ze, v: ve } : { z: zr, v: vr };
    } else if (better(vr, second.v)) {
      simplex[n] = { z: zr, v: vr };
    } else {
      // Contract: outside (towards the reflection) when it beat the worst, else inside.
      const outside = better(vr, worst.v);
      const zc = outside ? comb(centroid, zr, 0.5) : comb(centroid, worst.z, 0.5);
      const vc: Value = yield at(zc);
      const accept = outside ? !better(vr, vc) : better(vc, worst.v);
      if (accept) {
        simplex[n] = { z: zc, v: vc };
      } else {
        const shrunk = [best];
        for (const p of simplex.slice(1)) {
          const z = comb(best.z, p.z, 0.5);
          shrunk.push({ z, v: yield at(z) });
        }
        simplex = shrunk;
      }
    }
  }
}

export function* uniform(k: number): Optimizer {
  yield new Array(k).fill(1 / k);
}

/** Dirichlet(1, …, 1) samples: as many as the budget allows. */
export function* random(k: number, opts: SearchOptions): Optimizer {
  const rng = new Rng(`random-search:${opts.seed}`);
  for (let i = 0; i < opts.maxEvals; i++) {
    const g = Array.from({ length: k }, () => -Math.log(1 - rng.next()));
    const s = g.reduce((a, b) => a + b, 0);
    yield g.map((x) => x / s);
  }
}

/**
 * Greedy soup (Wortsman et al.): models by their own dev score, best first; each joins the
 * uniform soup if the soup does not get worse.
 */
export function* greedySoup(k: number, vertexValues: Value[]): Optimizer {
  const order = vertexValues.map((v, i) => ({ v, i })).sort((a, b) => (better(a.v, b.v) ? -1 : better(b.v, a.v) ? 1 : a.i - b.i));
  let soup = [order[0]!.i];
  let current = order[0]!.v;
  for (const { i } of order.slice(1)) {
    const trial = [...soup, i];
    const alpha = new Array(k).fill(0).map((_, j) => (trial.includes(j) ? 1 / trial.length : 0));
    const v: Value = yield alpha;
    if (!better(current, v)) {
      soup = trial;
      current = v;
    }
  }
}

export interface Evaluated {
  alpha: number[];
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

export type OptimizerName = 'nelder-mead' | 'uniform' | 'greedy-soup' | 'random';

/**
 * Evaluate every vertex (each model alone) first, then what the optimizer asks for, up to the
 * evaluation cap; repeated points come from a cache. The best point over everything evaluated
 * wins, so the result is never worse on dev than the best single model.
 */
export function search(k: number, name: OptimizerName, evaluate: (alpha: number[]) => Value, opts: SearchOptions): SearchResult {
  const cache = new Map<string, Value>();
  const trace: Evaluated[] = [];
  const run = (alpha: number[], source: Evaluated['source']): Value => {
    const key = alpha.map((a) => a.toFixed(9)).join(',');
    const hit = cache.get(key);
    if (hit) return hit;
    const t0 = performance.now();
    const value = evaluate(alpha);
    cache.set(key, value);
    trace.push({ alpha, value, ms: performance.now() - t0, source });
    return value;
  };
  const vertices = Array.from({ length: k }, (_, i) => run(Array.from({ length: k }, (_, j) => (i === j ? 1 : 0)), 'vertex'));
  const gen: Optimizer =
    name === 'nelder-mead' ? nelderMead(k, opts) : name === 'uniform' ? uniform(k) : name === 'random' ? random(k, opts) : greedySoup(k, vertices);
  let step = gen.next();
  while (!step.done && cache.size < opts.maxEvals) step = gen.next(run(step.value, 'optimizer'));
  let best = trace[0]!;
  for (const t of trace) if (better(t.value, best.value)) best = t;
  return { best, trace, evaluations: trace.length };
}
