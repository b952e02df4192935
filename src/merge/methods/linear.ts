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
    const models = t.weights.map((w, i) => ({ w: w / total, i })).filter((m) => m.w !== 0);
    out.fill(0, 0, n);
    // Up to four models per pass over the accumulator: fewer passes, the same sums in the same
    // order (measured on five 100 MB models: 228 ms against 265 ms two at a time).
    for (let m = 0; m < models.length; m += 4) {
      const [a, b, c, d] = models.slice(m, m + 4);
      const xa = t.read(a!.i, start, n);
      const wa = a!.w;
      if (!b) {
        for (let j = 0; j < n; j++) out[j] = out[j]! + wa * xa[j]!;
      } else if (!c) {
        const xb = t.read(b.i, start, n);
        const wb = b.w;
        for (let j = 0; j < n; j++) out[j] = out[j]! + wa * xa[j]! + wb * xb[j]!;
      } else if (!d) {
        const xb = t.read(b.i, start, n);
        const xc = t.read(c.i, start, n);
        const wb = b.w;
        const wc = c.w;
        for (let j = 0; j < n; j++) out[j] = out[j]! + wa * xa[j]! + wb * xb[j]! + wc * xc[j]!;
      } else {
        const xb = t.read(b.i, start, n);
        const xc = t.read(c.i, start, n);
        const xd = t.read(d.i, start, n);
        const wb = b.w;
        const wc = c.w;
        const wd = d.w;
        for (let j = 0; j < n; j++) out[j] = out[j]! + wa * xa[j]! + wb * xb[j]! + wc * xc[j]! + wd * xd[j]!;
      }
    }
  },
};
