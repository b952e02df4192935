import { unitWeights, type MergeMethod } from '../method.js';
import { kthLargest } from '../select.js';
import { allocFloat32 } from '../alloc.js';

/**
 * Model Breadcrumbs (Davari & Belilovsky, 2023; mergekit's breadcrumbs): each task vector loses
 * its `gamma` fraction of largest magnitudes (outliers) and then its smallest, so that a
 * `density` fraction remains; θ = θ_base + λ Σ wᵢ τ̂ᵢ. The cuts are magnitudes over the whole
 * tensor: an entry equal to the lower cut is kept, one equal to the upper cut is dropped.
 */
export const breadcrumbs: MergeMethod<{ density: number; gamma: number; lambda: number }, [number, number][]> = {
  name: 'breadcrumbs',
  description: 'drop each task vector\'s largest (outliers) and smallest entries, add up the rest',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      density: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.9, description: 'Fraction of each task vector kept' },
      gamma: { type: 'number', minimum: 0, maximum: 1, default: 0.01, description: 'Fraction of largest magnitudes dropped (within 1 − density)' },
      lambda: { type: 'number', default: 1, description: 'Scales the summed task vectors' },
    },
  },
  needsBase: true,
  minModels: 1,
  domain: 'box',
  defaultWeights: unitWeights,
  prepare(t) {
    // As mergekit counts: keep floor(density·N); drop floor(gamma·N) from the top, the rest from the bottom.
    const size = t.size;
    const keep = Math.floor(t.params.density * size);
    let top = Math.floor(t.params.gamma * size);
    let bottom = size - keep - top;
    if (bottom < 0) {
      top += bottom;
      bottom = 0;
    }
    const mags = allocFloat32(size, `breadcrumbs: tensor "${t.name}"`);
    const cuts: [number, number][] = [];
    for (let i = 0; i < t.k; i++) {
      for (let s = 0; s < size; s += t.step) {
        const n = Math.min(t.step, size - s);
        const base = t.read('base', s, n);
        const x = t.read(i, s, n);
        for (let j = 0; j < n; j++) mags[s + j] = Math.abs(x[j]! - base[j]!);
      }
      // The magnitude at ascending position `bottom` is the lowest kept; at size − top the lowest dropped.
      const low = bottom === 0 || keep === 0 ? 0 : kthLargest(mags, size - bottom);
      const high = top === 0 ? Infinity : kthLargest(mags, top);
      cuts.push(keep === 0 ? [Infinity, Infinity] : [low, high]);
    }
    return cuts;
  },
  chunk(t, cuts, start, n, out) {
    const base = t.read('base', start, n);
    out.fill(0, 0, n);
    for (let i = 0; i < t.k; i++) {
      const w = t.weights[i]! * t.params.lambda;
      if (w === 0) continue;
      const x = t.read(i, start, n);
      const [low, high] = cuts[i]!;
      for (let j = 0; j < n; j++) {
        const tau = x[j]! - base[j]!;
        const m = Math.abs(tau);
        if (m >= low && m < high) out[j]! += w * tau;
      }
    }
    for (let j = 0; j < n; j++) out[j]! += base[j]!;
  },
};
