import type { NamedTensor } from './safetensors.js';
import type { Weights } from './model.js';
import { StageInputError } from '../stage-type.js';
import type { TensorContext } from '../merge/method.js';
import { linear } from '../merge/methods/linear.js';
import { weightedSumJs } from '../merge/weighted-sum.js';

/**
 * θ(α) = Σ αᵢ θᵢ, tensor by tensor, into buffers allocated once: each evaluation of a search
 * reuses them, so merging never holds k scaled copies of the model. Models must agree on every
 * tensor merged (names and shapes); anything else is an error that names the model and tensor.
 */
export class Merger {
  private readonly names: string[];
  private readonly out: Weights;

  constructor(
    private readonly models: Weights[],
    /** Which tensors to merge (e.g. the encoder and the target's head). */
    select: (name: string) => boolean,
    labels: string[] = models.map((_, i) => `model ${i + 1}`),
  ) {
    if (models.length === 0) throw new StageInputError('interpolate needs at least one model');
    this.names = [...models[0]!.keys()].filter(select).sort();
    models.forEach((m, i) => {
      for (const name of this.names) {
        const t = m.get(name);
        const ref = models[0]!.get(name)!;
        if (!t) throw new StageInputError(`${labels[i]} has no tensor "${name}": interpolated models must share one architecture`);
        if (t.shape.join('x') !== ref.shape.join('x')) throw new StageInputError(`${labels[i]}: tensor "${name}" has shape [${t.shape}], ${labels[0]} has [${ref.shape}]`);
      }
      const extra = [...m.keys()].filter(select).filter((n) => !this.names.includes(n));
      if (extra.length) throw new StageInputError(`${labels[i]} has tensors ${labels[0]} lacks (${extra.slice(0, 3).join(', ')}): interpolated models must share one architecture`);
    });
    this.out = new Map(this.names.map((n) => [n, { shape: models[0]!.get(n)!.shape, data: new Float32Array(models[0]!.get(n)!.data.length) }]));
  }

  /** The merged weights for α (views of the reused buffers: copy before keeping them). */
  merge(alpha: number[]): Weights {
    if (alpha.length !== this.models.length) throw new StageInputError(`α has ${alpha.length} weights for ${this.models.length} models`);
    for (const name of this.names) {
      const dst = this.out.get(name)!.data;
      // The linear merge method's kernel, on tensors in memory: sums in double precision,
      // rounded to float32 once, so merging identical models gives back their exact bytes.
      // α already sums to 1 (a softmax): not normalised again, which could move a last bit.
      const acc = this.accumulator(dst.length);
      const ctx: TensorContext<{ normalize: boolean }> = {
        name, size: dst.length, weights: alpha, params: { normalize: false }, k: this.models.length, hasBase: false, rowLength: dst.length, step: dst.length,
        read: (i, start, n) => this.models[i as number]!.get(name)!.data.subarray(start, start + n),
        sumOf: (out, models, ws, start, n) => weightedSumJs(out, models.map((i) => ctx.read(i, start, n)), ws, n),
      };
      linear.chunk(ctx, undefined, 0, dst.length, acc);
      dst.set(acc);
    }
    return this.out;
  }

  private acc = new Float64Array(0);

  private accumulator(n: number): Float64Array {
    if (this.acc.length < n) this.acc = new Float64Array(n);
    return this.acc.subarray(0, n);
  }

  copy(): Weights {
    return new Map([...this.out].map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) } as NamedTensor]));
  }

  get tensorNames(): string[] {
    return this.names;
  }
}
