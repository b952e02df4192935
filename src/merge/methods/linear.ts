import { uniformWeights, type MergeMethod } from '../method.js';

/** θ = Σ wᵢ θᵢ (divided by Σ wᵢ unless normalize is false): the paper's interpolation. */
export const linear: MergeMethod<{ normalize: boolean }> = {
  name: 'linear',
  description: 'Σ wᵢ θᵢ / Σ wᵢ: weighted averaging (DFWE, model soups)',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { normalize: { type: 'boolean', default: true, description: 'Divide by the sum of the weights' } },
  },
  needsBase: false,
  minModels: 1,
  domain: 'simplex',
  defaultWeights: uniformWeights,
  chunk(t, _state, start, n, out) {
    const total = t.params.normalize ? t.weights.reduce((a, b) => a + b, 0) : 1;
    out.fill(0, 0, n);
    for (let i = 0; i < t.k; i++) {
      const w = t.weights[i]! / total;
      if (w === 0) continue;
      const x = t.read(i, start, n);
      for (let j = 0; j < n; j++) out[j]! += w * x[j]!;
    }
  },
};
