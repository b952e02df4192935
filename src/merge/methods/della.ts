import { unitWeights, type MergeMethod } from '../method.js';
import { draw, dropKeys } from '../drop.js';
import { deltaArrays, electedSum } from '../elect.js';

/**
 * DELLA (Deep et al., 2024; mergekit's della): in each row of each task vector, entries are
 * ranked by magnitude, and kept with a probability that rises linearly with rank from
 * density − ε (the smallest) to density + ε (the largest); kept entries are rescaled by 1/p.
 * Then TIES' sign election, and the agreeing entries' weighted sum (divided by their weights
 * when `normalize`). θ = θ_base + λ · that. Equal magnitudes rank by position; a row of one
 * entry is kept with probability density.
 */
export const della: MergeMethod<{ density: number; epsilon: number; lambda: number; seed: number; normalize: boolean }, number[]> = {
  name: 'della',
  description: 'drop task-vector entries with a probability that falls with their magnitude rank in the row, rescale, elect signs, add up',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      density: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'Mean probability that an entry is kept' },
      epsilon: { type: 'number', minimum: 0, default: 0.1, description: 'Keep probabilities run from density − epsilon to density + epsilon' },
      lambda: { type: 'number', default: 1, description: 'Scales the merged task vector' },
      seed: { type: 'integer', default: 0, description: 'Seed of the drops' },
      normalize: { type: 'boolean', default: true, description: 'Divide each entry by the weights of the models that agree on it' },
    },
  },
  check: (p) => (p.density - p.epsilon <= 0 || p.density + p.epsilon > 1 ? [`della needs 0 < density − epsilon and density + epsilon ≤ 1 (density ${p.density}, epsilon ${p.epsilon})`] : []),
  needsBase: true,
  minModels: 1,
  domain: 'box',
  defaultWeights: unitWeights,
  wholeRows: true,
  prepare: dropKeys,
  chunk(t, keys, start, n, out) {
    const { density, epsilon } = t.params;
    const row = t.rowLength;
    const base = t.read('base', start, n);
    const deltas = deltaArrays(t.k, n);
    const order = new Uint32Array(row);
    const mags = new Float64Array(row);
    for (let i = 0; i < t.k; i++) {
      const x = t.read(i, start, n);
      const d = deltas[i]!;
      for (let r = 0; r < n; r += row) {
        for (let j = 0; j < row; j++) {
          d[r + j] = x[r + j]! - base[r + j]!;
          mags[j] = Math.abs(d[r + j]!);
          order[j] = j;
        }
        // Ascending magnitude, position breaking ties: order[rank] is the entry of that rank.
        order.sort((a, b) => mags[a]! - mags[b]! || a - b);
        for (let rank = 0; rank < row; rank++) {
          const j = r + order[rank]!;
          const p = row === 1 ? density : density - epsilon + (2 * epsilon * rank) / (row - 1);
          d[j] = draw(keys[i]!, start + j) < p * 4294967296 ? d[j]! / p : 0;
        }
      }
    }
    electedSum(base, deltas, t.weights, t.params.lambda, t.params.normalize, n, out);
  },
};
