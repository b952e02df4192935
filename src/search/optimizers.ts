import { Rng } from '../ml/random.js';
import { eigenSymmetric } from './eigen.js';
import type { CoefficientSpace, Weights } from './space.js';

/*
 * Derivative-free optimizers over merge coefficients, each a generator behind one ask/tell
 * interface: it yields the next weights to evaluate and receives their value. Values compare by
 * score, ties broken by loss; the optimizers need nothing but these comparisons and rankings.
 */

export interface Value {
  score: number;
  loss: number;
}

export function better(a: Value, b: Value): boolean {
  return a.score > b.score || (a.score === b.score && a.loss < b.loss);
}

export type Optimizer = Generator<Weights, void, Value>;

export interface OptimizerOptions {
  /** Nelder–Mead iterations (each one to k + 1 evaluations). */
  iterations: number;
  /** The largest number of distinct evaluations (vertices included). */
  maxEvals: number;
  /** Nelder–Mead's initial simplex size, and twice CMA-ES's initial step, in z. */
  step: number;
  seed: number;
  /** The weights `uniform` evaluates (the method's defaults). */
  center: number[];
}

export type OptimizerName = 'nelder-mead' | 'cma-es' | 'uniform' | 'greedy-soup' | 'random';

/** An optimizer, declared once: the stages' schemas, the search and the reference read this. */
export interface OptimizerKind {
  name: OptimizerName;
  description: string;
  /** Only for weights on the simplex (it averages models). */
  simplexOnly?: boolean;
  /** The generator, given what the vertices (each model alone) scored. */
  start(space: CoefficientSpace, opts: OptimizerOptions, vertexValues: Value[]): Optimizer;
}

/** Nelder–Mead in z, from the centre with a large initial simplex. */
export function* nelderMead(space: CoefficientSpace, opts: OptimizerOptions): Optimizer {
  const n = space.dims;
  if (n <= 0) return;
  const at = (z: number[]): Weights => space.toWeights(z);
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

/**
 * CMA-ES (Hansen's (μ/μ_w, λ) with rank-one and rank-μ updates and step-size adaptation) in z,
 * from the centre with σ = step / 2; seeded. Runs until the evaluation budget is spent or the
 * step has collapsed.
 */
export function* cmaEs(space: CoefficientSpace, opts: OptimizerOptions): Optimizer {
  const n = space.dims;
  if (n <= 0) return;
  const rng = new Rng(`cma-es:${opts.seed}`);
  const lambda = 4 + Math.floor(3 * Math.log(n));
  const mu = Math.floor(lambda / 2);
  const raw = Array.from({ length: mu }, (_, i) => Math.log(mu + 0.5) - Math.log(i + 1));
  const sumW = raw.reduce((a, b) => a + b, 0);
  const w = raw.map((x) => x / sumW);
  const muEff = 1 / w.reduce((a, x) => a + x * x, 0);
  const cc = (4 + muEff / n) / (n + 4 + (2 * muEff) / n);
  const cs = (muEff + 2) / (n + muEff + 5);
  const c1 = 2 / ((n + 1.3) ** 2 + muEff);
  const cmu = Math.min(1 - c1, (2 * (muEff - 2 + 1 / muEff)) / ((n + 2) ** 2 + muEff));
  const damps = 1 + 2 * Math.max(0, Math.sqrt((muEff - 1) / (n + 1)) - 1) + cs;
  const chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
  let mean = new Array(n).fill(0);
  let sigma = opts.step / 2;
  let pc = new Array(n).fill(0);
  let ps = new Array(n).fill(0);
  let C = identity(n);
  let B = identity(n);
  let D = new Array(n).fill(1);
  for (let gen = 0; sigma > 1e-10; gen++) {
    const pop: { z: number[]; y: number[]; x: number[]; v: Value }[] = [];
    for (let i = 0; i < lambda; i++) {
      const z = Array.from({ length: n }, () => rng.normal());
      const y = B.map((row) => row.reduce((a, b, j) => a + b * D[j]! * z[j]!, 0));
      const x = mean.map((m, j) => m + sigma * y[j]!);
      pop.push({ z, y, x, v: yield space.toWeights(x) });
    }
    pop.sort((p, q) => (better(p.v, q.v) ? -1 : better(q.v, p.v) ? 1 : 0));
    const old = mean;
    const yw = new Array(n).fill(0).map((_, j) => pop.slice(0, mu).reduce((a, p, i) => a + w[i]! * p.y[j]!, 0));
    mean = old.map((m, j) => m + sigma * yw[j]!);
    // C^(-1/2) · yw = B · D⁻¹ · Bᵀ · yw
    const bty = B[0]!.map((_, j) => B.reduce((a, row, r) => a + row[j]! * yw[r]!, 0));
    const invSqrt = B.map((row) => row.reduce((a, b, j) => a + (b * bty[j]!) / D[j]!, 0));
    ps = ps.map((p, j) => (1 - cs) * p + Math.sqrt(cs * (2 - cs) * muEff) * invSqrt[j]!);
    const psNorm = Math.sqrt(ps.reduce((a, x) => a + x * x, 0));
    const hsig = psNorm / Math.sqrt(1 - (1 - cs) ** (2 * (gen + 1))) / chiN < 1.4 + 2 / (n + 1) ? 1 : 0;
    pc = pc.map((p, j) => (1 - cc) * p + hsig * Math.sqrt(cc * (2 - cc) * muEff) * yw[j]!);
    const next = identity(n).map(() => new Array(n).fill(0));
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        let rankMu = 0;
        for (let i = 0; i < mu; i++) rankMu += w[i]! * pop[i]!.y[r]! * pop[i]!.y[c]!;
        next[r]![c] = (1 - c1 - cmu) * C[r]![c]! + c1 * (pc[r]! * pc[c]! + (1 - hsig) * cc * (2 - cc) * C[r]![c]!) + cmu * rankMu;
      }
    }
    C = next;
    sigma *= Math.exp((cs / damps) * (psNorm / chiN - 1));
    const eig = eigenSymmetric(C);
    B = eig.vectors;
    D = eig.values.map((v) => Math.sqrt(Math.max(v, 1e-20)));
  }
}

function identity(n: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
}

/** The centre alone (no search). */
export function* uniform(space: CoefficientSpace, opts: OptimizerOptions): Optimizer {
  yield space.broadcast(opts.center);
}

/** Random points, as many as the budget allows: Dirichlet(1, …, 1) per group on the simplex, uniform in the box. */
export function* random(space: CoefficientSpace, opts: OptimizerOptions): Optimizer {
  const rng = new Rng(`random-search:${opts.seed}`);
  for (let i = 0; i < opts.maxEvals; i++) {
    const point: Weights = [];
    for (let g = 0; g < space.groups; g++) {
      if (space.domain === 'box') {
        point.push(Array.from({ length: space.k }, () => rng.next()));
        continue;
      }
      const e = Array.from({ length: space.k }, () => -Math.log(1 - rng.next()));
      const s = e.reduce((a, b) => a + b, 0);
      point.push(e.map((x) => x / s));
    }
    yield point;
  }
}

/**
 * Greedy soup (Wortsman et al.): models by their own score, best first; each joins the uniform
 * soup if the soup does not get worse. The same weights for every group.
 */
export function* greedySoup(space: CoefficientSpace, vertexValues: Value[]): Optimizer {
  const k = space.k;
  const order = vertexValues.map((v, i) => ({ v, i })).sort((a, b) => (better(a.v, b.v) ? -1 : better(b.v, a.v) ? 1 : a.i - b.i));
  let soup = [order[0]!.i];
  let current = order[0]!.v;
  for (const { i } of order.slice(1)) {
    const trial = [...soup, i];
    const alpha = new Array(k).fill(0).map((_, j) => (trial.includes(j) ? 1 / trial.length : 0));
    const v: Value = yield space.broadcast(alpha);
    if (!better(current, v)) {
      soup = trial;
      current = v;
    }
  }
}

const kinds: OptimizerKind[] = [
  { name: 'nelder-mead', description: "Nelder–Mead, the paper's: from the centre with a large initial simplex of size `step`, for `iterations` iterations", start: (space, opts) => nelderMead(space, opts) },
  { name: 'cma-es', description: 'CMA-ES, seeded: from the centre with σ = `step`/2, until the budget is spent or its step collapses', start: (space, opts) => cmaEs(space, opts) },
  { name: 'uniform', description: "no search: the method's default weights (uniform α for linear)", start: (space, opts) => uniform(space, opts) },
  { name: 'greedy-soup', description: 'greedy soup: models best first, each kept if the uniform soup of those kept does not get worse (simplex weights only)', simplexOnly: true, start: (space, _opts, vertices) => greedySoup(space, vertices) },
  { name: 'random', description: 'seeded random points up to the budget: Dirichlet(1, …, 1) on the simplex, uniform in the box', start: (space, opts) => random(space, opts) },
];

/** The optimizers by name: one entry each. */
export const optimizers: ReadonlyMap<OptimizerName, OptimizerKind> = new Map(kinds.map((k) => [k.name, k]));

/** The optimizer parameter's schema, for a stage that searches. */
export function optimizerSchema(): { enum: OptimizerName[]; default: OptimizerName; description: string } {
  return { enum: [...optimizers.keys()], default: 'nelder-mead', description: kinds.map((k) => `${k.name}: ${k.description}`).join('; ') };
}
