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
    const base = t.read('base', start, n);
    out.fill(0, 0, n);
    for (let i = 0; i < t.k; i++) {
      const w = t.weights[i]! * t.params.lambda;
      if (w === 0) continue;
      const x = t.read(i, start, n);
      for (let j = 0; j < n; j++) out[j]! += w * (x[j]! - base[j]!);
    }
    for (let j = 0; j < n; j++) out[j]! += base[j]!;
  },
};
