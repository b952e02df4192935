/*
 * The 16-bit float formats written out from their definitions, for references independent of
 * dfwe's conversions: every value of a format, and the correctly rounded bits of a float64.
 */

export type Half = 'F16' | 'BF16';

/** Every finite value of a 16-bit float format, ascending, with its bits; then ±infinity where rounding past the largest lands. */
export function table(dtype: Half): { values: number[]; bits: number[] } {
  const all: [number, number][] = [];
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let b = 0; b < 0x10000; b++) {
    let v: number;
    if (dtype === 'BF16') {
      u32[0] = b << 16;
      v = f32[0]!;
    } else {
      const e = (b >> 10) & 0x1f;
      const m = b & 0x3ff;
      v = (b & 0x8000 ? -1 : 1) * (e === 0x1f ? NaN : e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
    }
    if (Number.isFinite(v) && !Object.is(v, -0)) all.push([v, b]);
  }
  // IEEE 754: a value is rounded as if the exponent had no bound, and one that lands beyond the
  // largest finite value is infinite. The next power of two stands for infinity, with an even last bit.
  const inf = dtype === 'F16' ? 2 ** 16 : 2 ** 128;
  const infBits = dtype === 'F16' ? 0x7c00 : 0x7f80;
  all.push([inf, infBits], [-inf, infBits | 0x8000]);
  all.sort((a, b) => a[0] - b[0]);
  return { values: all.map(([v]) => v), bits: all.map(([, b]) => b) };
}

/** The correctly rounded bits of v: the nearest value, a tie to the even one (the sign of a zero kept). */
export function reference(v: number, t: { values: number[]; bits: number[] }): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  let lo = 0;
  let hi = t.values.length - 1;
  if (v <= t.values[lo]!) return t.bits[lo]!;
  if (v >= t.values[hi]!) return t.bits[hi]!;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (t.values[mid]! <= v) lo = mid;
    else hi = mid;
  }
  const a = t.values[lo]!;
  const b = t.values[hi]!;
  let r: number;
  if (v === a) r = t.bits[lo]!;
  else {
    // a < v < b, adjacent: both differences are exact (Sterbenz), except across zero, where the nearer is plain.
    const da = v - a;
    const db = b - v;
    r = da < db ? t.bits[lo]! : db < da ? t.bits[hi]! : (t.bits[lo]! & 1) === 0 ? t.bits[lo]! : t.bits[hi]!;
  }
  // A value between −smallest and 0 that rounds to zero keeps its sign.
  return (r & 0x7fff) === 0 ? (v < 0 ? 0x8000 : 0) : r;
}

