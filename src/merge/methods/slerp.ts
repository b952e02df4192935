import type { MergeMethod } from '../method.js';
import { gram } from '../gram.js';

/**
 * Spherical interpolation of two models, tensor by tensor: t = w₁ / (w₀ + w₁) along the great
 * circle between θ₀ and θ₁ (their angle Ω from the normalised tensors), straight-line
 * interpolation when they are nearly parallel or one is zero. More than two models: multislerp.
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
  moreModels: 'multislerp interpolates any number of models on the sphere',
  domain: 'simplex',
  defaultWeights: () => [0.5, 0.5],
  prepare(t) {
    const g = gram(t, false);
    if (g[0]![0] === 0 || g[1]![1] === 0) return undefined;
    const cos = g[0]![1]! / Math.sqrt(g[0]![0]! * g[1]![1]!);
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
