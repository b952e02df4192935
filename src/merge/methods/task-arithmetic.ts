import { unitWeights, type MergeMethod } from '../method.js';

/** θ = θ_base + λ Σ wᵢ (θᵢ − θ_base) (Ilharco et al., editing models with task arithmetic). */
export const taskArithmetic: MergeMethod<{ lambda: number }> = {
  name: 'task_arithmetic',
  description: 'θ_base + λ Σ wᵢ (θᵢ − θ_base): adds up task vectors',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { lambda: { type: 'number', default: 1, description: 'Scales the summed task vectors' } },
  },
  needsBase: true,
  minModels: 1,
  domain: 'box',
  defaultWeights: unitWeights,
  chunk(t, _state, start, n, out) {
    const models = t.weights.map((w, i) => ({ w: w * t.params.lambda, i })).filter((m) => m.w !== 0);
    t.sumOf(out, models.map((m) => m.i), models.map((m) => m.w), start, n, true);
  },
};
