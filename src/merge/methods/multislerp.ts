import { StageInputError } from '../../stage-type.js';
import { uniformWeights, type MergeMethod } from '../method.js';
import { gram } from '../gram.js';

const EPS = 1e-8;

/**
 * Multi-SLERP (mergekit's multislerp), per tensor: barycentric interpolation on the sphere. Each
 * model (its task vector, when a base is given) is normalised, the weighted mean of the unit
 * vectors is projected back onto the sphere, and the result is scaled to the weighted mean of
 * the norms. With weights summing to 1, the tangent-space step mergekit takes at that mean sums
 * to zero, so the result is this linear combination: Σ cᵢ θᵢ with cᵢ = wᵢ/‖θᵢ‖ · (Σ wⱼ‖θⱼ‖) / ‖Σ wⱼ θⱼ/‖θⱼ‖‖.
 */
export const multislerp: MergeMethod<{ normalize: boolean }, number[] | undefined> = {
  name: 'multislerp',
  description: 'spherical interpolation of any number of models (of task vectors, with a base)',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { normalize: { type: 'boolean', default: true, description: 'Divide the weights by their sum' } },
  },
  needsBase: false,
  minModels: 1,
  domain: 'simplex',
  defaultWeights: uniformWeights,
  prepare(t) {
    if (t.k === 1) return undefined;
    const g = gram(t, t.hasBase);
    const total = t.params.normalize ? t.weights.reduce((a, b) => a + b, 0) : 1;
    const w = t.weights.map((x) => x / total);
    const norms = g.map((row, i) => Math.sqrt(row[i]!));
    const u = w.map((wi, i) => wi / (norms[i]! + EPS));
    let mean2 = 0;
    for (let i = 0; i < t.k; i++) for (let j = 0; j < t.k; j++) mean2 += u[i]! * u[j]! * g[i]![j]!;
    const meanNorm = Math.sqrt(Math.max(0, mean2));
    if (meanNorm < EPS) {
      if (t.k === 2) return w;
      throw new StageInputError(`multislerp: in tensor "${t.name}" the weighted mean of the normalised models is zero (opposite models whose weights cancel); choose other weights`);
    }
    const avgNorm = w.reduce((a, wi, i) => a + wi * norms[i]!, 0);
    return u.map((ui) => (ui * avgNorm) / meanNorm);
  },
  chunk(t, coefficients, start, n, out) {
    const c = coefficients ?? [1];
    t.sumOf(out, c.map((_, i) => i), c, start, n, t.hasBase);
  },
};
