import { StageInputError } from '../../stage-type.js';
import { uniformWeights, type MergeMethod } from '../method.js';
import { gram } from '../gram.js';

/**
 * Model Stock (Jang et al., 2024; mergekit's model_stock, per tensor): with task vectors
 * τᵢ = θᵢ − θ₀ and cos θ the mean of their pairwise cosines, t = N cos θ / (1 + (N − 1) cos θ)
 * and θ = t · θ̄ + (1 − t) · θ₀, where θ̄ = Σ wᵢ θᵢ / Σ wᵢ (uniform weights: the paper's average).
 */
export const modelStock: MergeMethod<Record<string, never>, number> = {
  name: 'model_stock',
  description: 'average the models, then move toward the base by how far apart their task vectors point',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  needsBase: true,
  minModels: 2,
  domain: 'simplex',
  defaultWeights: uniformWeights,
  prepare(t) {
    const g = gram(t, true);
    const cosines: number[] = [];
    for (let i = 0; i < t.k; i++) {
      for (let j = i + 1; j < t.k; j++) cosines.push(Math.min(1, Math.max(-1, g[i]![j]! / Math.max(Math.sqrt(g[i]![i]! * g[j]![j]!), 1e-6))));
    }
    const cos = cosines.reduce((a, b) => a + b, 0) / cosines.length;
    return (t.k * cos) / (1 + (t.k - 1) * cos);
  },
  chunk(t, ratio, start, n, out) {
    const total = t.weights.reduce((a, b) => a + b, 0);
    if (total === 0) throw new StageInputError('model_stock: the weights sum to 0, so the models have no average');
    // t·Σ (wᵢ/W)(θᵢ − θ₀) + θ₀ = t·θ̄ + (1 − t)·θ₀.
    const models = t.weights.map((w, i) => ({ w: (ratio * w) / total, i })).filter((m) => m.w !== 0);
    t.sumOf(out, models.map((m) => m.i), models.map((m) => m.w), start, n, true);
  },
};
