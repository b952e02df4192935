import { unitWeights, type MergeMethod } from '../method.js';
import { kthLargest } from '../select.js';
import { allocFloat32 } from '../alloc.js';
import { deltaArrays, electedSum } from '../elect.js';

/**
 * TIES (Yadav et al., 2023): each task vector τᵢ = θᵢ − θ_base is trimmed to its `density`
 * fraction of largest magnitudes; the sign of Σ wᵢ τ̂ᵢ is elected per element; the merged task
 * vector is the weighted mean of the trimmed entries that agree with it. θ = θ_base + λ τ.
 */
export const ties: MergeMethod<{ density: number; lambda: number }, number[]> = {
  name: 'ties',
  description: 'trim task vectors to their largest entries, elect a sign per entry, average those that agree',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      density: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.2, description: 'Fraction of each task vector kept (largest magnitudes)' },
      lambda: { type: 'number', default: 1, description: 'Scales the merged task vector' },
    },
  },
  needsBase: true,
  minModels: 1,
  domain: 'box',
  defaultWeights: unitWeights,
  prepare(t) {
    // Each model's magnitude threshold, over the whole tensor: one scratch array, model by model.
    const keep = Math.max(1, Math.ceil(t.params.density * t.size));
    const mags = allocFloat32(t.size, `ties: tensor "${t.name}"`);
    const thresholds: number[] = [];
    const step = t.step;
    for (let i = 0; i < t.k; i++) {
      for (let s = 0; s < t.size; s += step) {
        const n = Math.min(step, t.size - s);
        const base = t.read('base', s, n);
        const x = t.read(i, s, n);
        for (let j = 0; j < n; j++) mags[s + j] = Math.abs(x[j]! - base[j]!);
      }
      thresholds.push(keep >= t.size ? 0 : kthLargest(mags, keep));
    }
    return thresholds;
  },
  chunk(t, thresholds, start, n, out) {
    const base = t.read('base', start, n);
    const deltas = deltaArrays(t.k, n);
    for (let i = 0; i < t.k; i++) {
      const x = t.read(i, start, n);
      const d = deltas[i]!;
      const thr = thresholds[i]!;
      for (let j = 0; j < n; j++) {
        const tau = x[j]! - base[j]!;
        d[j] = Math.abs(tau) >= thr ? tau : 0;
      }
    }
    electedSum(base, deltas, t.weights, t.params.lambda, true, n, out);
  },
};
