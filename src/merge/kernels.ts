import { readFileSync } from 'node:fs';
import type { FloatDtype } from '../checkpoint/dtype.js';

/*
 * The merge's hot loops (decoding inputs, weighted sums, rounding the result) in WebAssembly SIMD
 * (kernels.wat, assembled by `npm run build`). One KernelMemory per thread holds every buffer a
 * merge touches: file bytes are read straight into it, decoded, summed and encoded in place,
 * and written out from it, so no element is copied between JavaScript and the kernels.
 */

interface KernelExports {
  memory: WebAssembly.Memory;
  decode_f16(src: number, dst: number, n: number): void;
  decode_bf16(src: number, dst: number, n: number): void;
  weighted_sum(acc: number, xs: number, ws: number, k: number, base: number, n: number, pad: number, kind: number): void;
  encode(kind: number, acc: number, dst: number, n: number, pad: number): void;
}

let compiled: WebAssembly.Module | undefined;

/** The compiled kernels (once per thread; a Module may also be posted to a worker). */
export function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(readFileSync(new URL('./kernels.wasm', import.meta.url)));
  return compiled;
}

const ENCODE_KIND: Record<FloatDtype, number> = { F32: 0, BF16: 1, F16: 2, F64: -1 };

/** Per input slot: its raw bytes (16-bit dtypes) and its float32 values. */
interface Slot {
  raw: Uint8Array;
  f32: Float32Array;
}

export class KernelMemory {
  private readonly k: number;
  private readonly exports: KernelExports;
  readonly slots: Slot[];
  readonly acc: Float64Array;
  readonly encoded: Uint8Array;
  private readonly pointers: Int32Array;
  private readonly weights: Float64Array;
  private readonly pad: number;

  /** Room for `inputs` slots of `chunk` elements each, and one accumulator and one encoded chunk. */
  constructor(inputs: number, readonly chunk: number, module = kernelModule()) {
    this.k = inputs;
    const sizes = { raw: chunk * 8, f32: chunk * 4 };
    const total = 64 + inputs * (sizes.raw + sizes.f32) + chunk * 8 + chunk * 8 + inputs * 12 + (inputs + 1) * 16 + inputs * 4 + 64;
    this.exports = new WebAssembly.Instance(module, {}).exports as unknown as KernelExports;
    this.exports.memory.grow(Math.ceil(total / 65536));
    const buffer = this.exports.memory.buffer;
    let at = 64;
    const take = (bytes: number): number => {
      const p = at;
      at += Math.ceil(bytes / 16) * 16;
      return p;
    };
    this.slots = Array.from({ length: inputs }, () => ({ raw: new Uint8Array(buffer, take(sizes.raw), sizes.raw), f32: new Float32Array(buffer, take(sizes.f32), chunk) }));
    this.acc = new Float64Array(buffer, take(chunk * 8), chunk);
    this.encoded = new Uint8Array(buffer, take(chunk * 8), chunk * 8);
    this.pointers = new Int32Array(buffer, take(inputs * 4), inputs);
    this.weights = new Float64Array(buffer, take(inputs * 8), inputs);
    this.pad = take((inputs + 1) * 16 + inputs * 4 + 64);
  }

  /** Slot i's first n raw bytes decoded into its float32 values. */
  decode(i: number, dtype: 'F16' | 'BF16', n: number): Float32Array {
    const s = this.slots[i]!;
    (dtype === 'F16' ? this.exports.decode_f16 : this.exports.decode_bf16)(s.raw.byteOffset, s.f32.byteOffset, n);
    return s.f32.subarray(0, n);
  }

  /**
   * out[j] = Σ wᵢ xᵢ[j] in order of i, or with a base b: Σ wᵢ (xᵢ[j] − b[j]), then + b[j]; in
   * float64. The xᵢ and b are views of this memory holding `dtype` values: float32 arrays, or
   * the raw bytes of F16 or BF16, decoded as they are summed.
   */
  weightedSum(out: Float64Array, xs: ArrayBufferView[], ws: number[], n: number, base?: ArrayBufferView, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): void {
    if (xs.length > this.k) throw new Error(`internal: ${xs.length} inputs for ${this.k} slots`);
    xs.forEach((x, i) => {
      this.pointers[i] = x.byteOffset;
      this.weights[i] = ws[i]!;
    });
    this.exports.weighted_sum(out.byteOffset, this.pointers.byteOffset, this.weights.byteOffset, xs.length, base ? base.byteOffset : 0, n, this.pad, ENCODE_KIND[dtype]);
  }

  /** The first n accumulated values rounded once to `dtype`, as its bytes. */
  encode(dtype: FloatDtype, n: number): Uint8Array {
    if (dtype === 'F64') return new Uint8Array(this.acc.buffer, this.acc.byteOffset, n * 8);
    this.exports.encode(ENCODE_KIND[dtype], this.acc.byteOffset, this.encoded.byteOffset, n, this.pad);
    return this.encoded.subarray(0, n * (dtype === 'F32' ? 4 : 2));
  }
}
