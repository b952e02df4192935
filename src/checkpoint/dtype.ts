import { dict } from '../util/dict.js';
import { endianness } from 'node:os';

/*
 * Element types of checkpoint tensors, as safetensors names them. Floating types are decoded to
 * float32 for merging (merges accumulate in float64) and encoded back to the input's type with
 * round-to-nearest-even, so a merge of identical models gives back their exact bytes. Other
 * types (integer buffers such as position ids) are carried through unmerged.
 */

export type FloatDtype = 'F64' | 'F32' | 'F16' | 'BF16';

// Looked up by the dtype a file names: without a prototype, `toString` is no dtype (see util/dict.ts).
export const DTYPE_BYTES: Record<string, number> = dict(Object.entries({
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
}));

export function isFloatDtype(d: string): d is FloatDtype {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';
}

if (endianness() !== 'LE') {
  // safetensors is little-endian; typed-array views below read the host's order.
  throw new Error('dfwe reads and writes checkpoints on little-endian machines only');
}

let f16Table: Float32Array | undefined;

/** Every float16 bit pattern's value: decoding is one table lookup per element. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    t[h] = exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** A tensor's raw little-endian bytes as float32 values. `bytes` must start 8-byte aligned. */
export function decode(bytes: Uint8Array, dtype: FloatDtype, out?: Float32Array): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype]!;
  const dst = out && out.length >= n ? out.subarray(0, n) : new Float32Array(n);
  switch (dtype) {
    case 'F32':
      dst.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
      break;
    case 'F64': {
      const src = new Float64Array(bytes.buffer, bytes.byteOffset, n);
      for (let i = 0; i < n; i++) dst[i] = src[i]!;
      break;
    }
    case 'F16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const t = halfTable();
      for (let i = 0; i < n; i++) dst[i] = t[src[i]!]!;
      break;
    }
    case 'BF16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
      break;
    }
  }
  return dst;
}

/** float32 bits → float16 bits, rounding to nearest even (overflow to ±Inf, NaN kept NaN). */
function halfBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    return sign | ((mant + half - 1 + ((mant >> shift) & 1)) >> shift);
  }
  // A carry out of the mantissa rounds up into the exponent, which is what the bits do by addition.
  return (sign | ((e << 10) + ((mant + 0xfff + ((mant >> 13) & 1)) >> 13))) & 0xffff;
}

let f32Scratch = new Float32Array(0);

/**
 * float64 values as float32 rounded to odd, for a second rounding to F16 or BF16: an inexact
 * result whose last bit is 0 moves one unit toward the value, so the last bit records that bits
 * were dropped. With 13 (F16) or 16 (BF16) bits more than the target, rounding that to nearest
 * even gives the correctly rounded result of the float64 value: rounded once, not twice
 * (float64 → float32 → float16 by nearest left values one unit off).
 */
function asFloat32ForNarrowing(values: Float64Array | Float32Array): Float32Array {
  if (values instanceof Float32Array) return values;
  if (f32Scratch.length < values.length) f32Scratch = new Float32Array(values.length);
  const f = f32Scratch.subarray(0, values.length);
  f.set(values);
  const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
  for (let i = 0; i < f.length; i++) {
    const r = f[i]!;
    const v = values[i]!;
    // Exact, zero (the value is far below F16's and BF16's smallest), infinite or NaN: as it is.
    if (r === v || r === 0 || !Number.isFinite(r) || (bits[i]! & 1) === 1) continue;
    bits[i] = (r > v) === (r > 0) ? bits[i]! - 1 : bits[i]! + 1;
  }
  return f;
}

/** Values (float64 accumulators or float32) as the raw little-endian bytes of `dtype`. */
export function encode(values: Float64Array | Float32Array, dtype: FloatDtype, out?: Uint8Array): Uint8Array {
  const n = values.length;
  const size = n * DTYPE_BYTES[dtype]!;
  const dst = out && out.byteLength >= size ? out.subarray(0, size) : new Uint8Array(size);
  switch (dtype) {
    case 'F32':
      new Float32Array(dst.buffer, dst.byteOffset, n).set(values);
      break;
    case 'F64':
      new Float64Array(dst.buffer, dst.byteOffset, n).set(values);
      break;
    case 'F16': {
      const f32 = asFloat32ForNarrowing(values);
      const bits = new Uint32Array(f32.buffer, f32.byteOffset, n);
      const h = new Uint16Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) h[i] = halfBits(bits[i]!);
      break;
    }
    case 'BF16': {
      const f32 = asFloat32ForNarrowing(values);
      const bits = new Uint32Array(f32.buffer, f32.byteOffset, n);
      const h = new Uint16Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const f = bits[i]!;
        // NaN stays a (quiet) NaN; else round to nearest even on the dropped 16 bits.
        h[i] = (f & 0x7fffffff) > 0x7f800000 ? ((f >>> 16) | 0x40) & 0xffff : ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
      }
      break;
    }
  }
  return dst;
}
