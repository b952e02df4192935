import type { NamedTensor } from './safetensors.js';
import type { Weights } from './model.js';
import { StageInputError } from '../stage-type.js';

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
      // Sums in double precision, rounded to float32 once, so merging identical models gives
      // back their exact bytes. One streaming pass per model over a reused accumulator: the
      // JIT turns these plain loops into fast code, where a per-element loop over models is not.
      const acc = this.accumulator(dst.length);
      const first = this.models[0]!.get(name)!.data;
      const a0 = alpha[0]!;
      for (let i = 0; i < dst.length; i++) acc[i] = a0 * first[i]!;
      for (let j = 1; j < this.models.length; j++) {
        const aj = alpha[j]!;
        if (aj === 0) continue;
        const src = this.models[j]!.get(name)!.data;
        for (let i = 0; i < dst.length; i++) acc[i]! += aj * src[i]!;
      }
      for (let i = 0; i < dst.length; i++) dst[i] = acc[i]!;
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
