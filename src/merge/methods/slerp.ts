import type { MergeMethod } from '../method.js';

/**
 * Spherical interpolation of two models, tensor by tensor: t = w₁ / (w₀ + w₁) along the great
 * circle between θ₀ and θ₁ (their angle Ω from the normalised tensors), straight-line
 * interpolation when they are nearly parallel or one is zero.
 */
export const slerp: MergeMethod<{ parallel: number }, { omega: number } | undefined> = {
  name: 'slerp',
  description: 'spherical interpolation of two models; t = w₁ / (w₀ + w₁)',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { parallel: { type: 'number', minimum: 0, maximum: 1, default: 0.9995, description: 'Above this |cos Ω|, interpolate in a straight line' } },
  },
  needsBase: false,
  minModels: 2,
  maxModels: 2,
  domain: 'simplex',
  defaultWeights: () => [0.5, 0.5],
  prepare(t) {
    let dot = 0;
    let aa = 0;
    let bb = 0;
    const step = t.step;
    for (let s = 0; s < t.size; s += step) {
      const n = Math.min(step, t.size - s);
      const a = t.read(0, s, n);
      const b = t.read(1, s, n);
      for (let j = 0; j < n; j++) {
        dot += a[j]! * b[j]!;
        aa += a[j]! * a[j]!;
        bb += b[j]! * b[j]!;
      }
    }
    if (aa === 0 || bb === 0) return undefined;
    const cos = dot / Math.sqrt(aa * bb);
    return Math.abs(cos) > t.params.parallel ? undefined : { omega: Math.acos(Math.min(1, Math.max(-1, cos))) };
  },
  chunk(t, angle, start, n, out) {
    const sum = t.weights[0]! + t.weights[1]!;
    const u = sum === 0 ? 0.5 : t.weights[1]! / sum;
    let ca = 1 - u;
    let cb = u;
    if (angle) {
      const s = Math.sin(angle.omega);
      ca = Math.sin((1 - u) * angle.omega) / s;
      cb = Math.sin(u * angle.omega) / s;
    }
    const a = t.read(0, start, n);
    const b = t.read(1, start, n);
    for (let j = 0; j < n; j++) out[j] = ca * a[j]! + cb * b[j]!;
  },
};
