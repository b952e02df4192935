/**
 * The SIMD kernel's weighted sum in plain JavaScript, with the same arithmetic in the same order
 * (float64 multiply, then add, model by model; with a base, task vectors, then the base): for
 * tensors that are not in kernel memory (the tfjs stages' in-memory merge), and the reference
 * the kernel is tested against.
 */
export function weightedSumJs(out: Float64Array, xs: Float32Array[], ws: number[], n: number, base?: Float32Array): void {
  out.fill(0, 0, n);
  xs.forEach((x, i) => {
    const w = ws[i]!;
    if (base) for (let j = 0; j < n; j++) out[j] = out[j]! + w * (x[j]! - base[j]!);
    else for (let j = 0; j < n; j++) out[j] = out[j]! + w * x[j]!;
  });
  if (base) for (let j = 0; j < n; j++) out[j] = out[j]! + base[j]!;
}
