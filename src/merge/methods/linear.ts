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
    // A model of weight 0 is left out, not multiplied by 0: its infinities would make NaN.
    const models = t.weights.map((w, i) => ({ w: w / total, i })).filter((m) => m.w !== 0);
    t.sumOf(out, models.map((m) => m.i), models.map((m) => m.w), start, n, false);
  },
};
