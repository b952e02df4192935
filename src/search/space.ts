import { maxOf } from '../util/arrays.js';
/**
 * The coefficients a merge search sets: per group of tensors, one weight per model, either on the
 * simplex (they sum to 1: the paper's α) or each in [0, 1] (task-vector weights). Optimizers that
 * need an unconstrained space work on z: a simplex group is softmax([0, z₁ … z_{k−1}]) (one logit
 * fixed), a box weight is the logistic of its z. z = 0 is the centre: uniform α, or 1/2 each.
 */
export type Weights = number[][];

export class CoefficientSpace {
  constructor(
    readonly groups: number,
    readonly k: number,
    readonly domain: 'simplex' | 'box',
  ) {}

  /** Coordinates of z per group. */
  get perGroup(): number {
    return this.domain === 'simplex' ? this.k - 1 : this.k;
  }

  get dims(): number {
    return this.groups * this.perGroup;
  }

  toWeights(z: readonly number[]): Weights {
    const out: Weights = [];
    for (let g = 0; g < this.groups; g++) {
      const part = z.slice(g * this.perGroup, (g + 1) * this.perGroup);
      out.push(this.domain === 'simplex' ? softmaxAlpha(part) : part.map((x) => 1 / (1 + Math.exp(-x))));
    }
    return out;
  }

  /** Each model alone, in every group at once: what the paper compares with. */
  vertices(): Weights[] {
    return Array.from({ length: this.k }, (_, i) => Array.from({ length: this.groups }, () => Array.from({ length: this.k }, (_, j) => (i === j ? 1 : 0))));
  }

  /** The same weights for every group. */
  broadcast(w: readonly number[]): Weights {
    return Array.from({ length: this.groups }, () => [...w]);
  }
}

/** α = softmax([0, z₁ … z_{k-1}]): one logit fixed, so z is unconstrained. */
export function softmaxAlpha(z: readonly number[]): number[] {
  const logits = [0, ...z];
  const m = maxOf(logits);
  const e = logits.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** A point's identity for the evaluation cache: the weights to 9 decimals. */
export function pointKey(w: Weights): string {
  return w.map((g) => g.map((a) => a.toFixed(9)).join(',')).join(';');
}
