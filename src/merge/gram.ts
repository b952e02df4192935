import type { TensorContext } from './method.js';

/**
 * The Gram matrix of a tensor's k models (their task vectors θᵢ − θ_base when `base`): every
 * pairwise dot product over the whole tensor, in float64, in one pass. SLERP's angle, Model
 * Stock's and multi-SLERP's coefficients come from it.
 */
export function gram<P>(t: TensorContext<P>, base: boolean): number[][] {
  const k = t.k;
  const g = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const xs = new Array<Float32Array | Float64Array>(k);
  const tau = Array.from({ length: base ? k : 0 }, () => new Float64Array(t.step));
  for (let s = 0; s < t.size; s += t.step) {
    const n = Math.min(t.step, t.size - s);
    const b = base ? t.read('base', s, n) : undefined;
    for (let i = 0; i < k; i++) {
      const x = t.read(i, s, n);
      if (!b) xs[i] = x;
      else {
        const d = tau[i]!;
        for (let j = 0; j < n; j++) d[j] = x[j]! - b[j]!;
        xs[i] = d;
      }
    }
    for (let i = 0; i < k; i++) {
      for (let l = i; l < k; l++) {
        const a = xs[i]!;
        const c = xs[l]!;
        let dot = 0;
        for (let j = 0; j < n; j++) dot += a[j]! * c[j]!;
        g[i]![l]! += dot;
      }
    }
  }
  for (let i = 0; i < k; i++) for (let l = 0; l < i; l++) g[i]![l] = g[l]![i]!;
  return g;
}
