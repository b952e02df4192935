import { unitWeights, type MergeMethod } from '../method.js';
import { draw, dropKeys } from '../drop.js';

/**
 * DARE (Yu et al., 2024), its linear form: each entry of each task vector is kept with
 * probability `density` and the kept ones rescaled by 1/density; θ = θ_base + λ Σ wᵢ τ̃ᵢ. The
 * drop is a hash of (seed, tensor, model, element), so it is the same however the tensor is read.
 */
export const dare: MergeMethod<{ density: number; lambda: number; seed: number }, number[]> = {
  name: 'dare',
  description: 'drop task-vector entries at random (kept with probability density), rescale the rest, add up',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      density: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'Probability that an entry is kept' },
      lambda: { type: 'number', default: 1, description: 'Scales the summed task vectors' },
      seed: { type: 'integer', default: 0, description: 'Seed of the drops' },
    },
  },
  needsBase: true,
  minModels: 1,
  domain: 'box',
  defaultWeights: unitWeights,
  prepare: dropKeys,
  chunk(t, keys, start, n, out) {
    const base = t.read('base', start, n);
    const limit = t.params.density * 4294967296;
    out.fill(0, 0, n);
    for (let i = 0; i < t.k; i++) {
      const w = (t.weights[i]! * t.params.lambda) / t.params.density;
      if (w === 0) continue;
      const x = t.read(i, start, n);
      const key = keys[i]!;
      for (let j = 0; j < n; j++) {
        const index = start + j;
        if (draw(key, index) < limit) out[j]! += w * (x[j]! - base[j]!);
      }
    }
    for (let j = 0; j < n; j++) out[j]! += base[j]!;
  },
};
