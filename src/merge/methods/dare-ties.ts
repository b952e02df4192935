import { unitWeights, type MergeMethod } from '../method.js';
import { draw, dropKeys } from '../drop.js';
import { deltaArrays, electedSum } from '../elect.js';

/**
 * DARE with TIES' sign election (Yu et al., 2024; mergekit's dare_ties): each task vector's
 * entries are kept with probability `density` and rescaled by 1/density (the drops as in dare),
 * then a sign is elected per entry and the agreeing entries are summed, weighted (divided by
 * their weights' sum when `normalize`). θ = θ_base + λ · that.
 */
export const dareTies: MergeMethod<{ density: number; lambda: number; seed: number; normalize: boolean }, number[]> = {
  name: 'dare_ties',
  description: 'DARE drops and rescales task-vector entries, then TIES elects a sign per entry and adds up those that agree',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      density: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'Probability that an entry is kept' },
      lambda: { type: 'number', default: 1, description: 'Scales the merged task vector' },
      seed: { type: 'integer', default: 0, description: 'Seed of the drops' },
      normalize: { type: 'boolean', default: false, description: 'Divide each entry by the weights of the models that agree on it (as TIES does)' },
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
    const deltas = deltaArrays(t.k, n);
    for (let i = 0; i < t.k; i++) {
      const x = t.read(i, start, n);
      const d = deltas[i]!;
      for (let j = 0; j < n; j++) d[j] = draw(keys[i]!, start + j) < limit ? (x[j]! - base[j]!) / t.params.density : 0;
    }
    electedSum(base, deltas, t.weights, t.params.lambda, t.params.normalize, n, out);
  },
};
