/**
 * The k-th largest value of `xs` (1-based), reordering it: Hoare quickselect with a
 * median-of-three pivot, iterative, O(n) on average. NaN never reaches here (magnitudes of
 * finite differences).
 */
export function kthLargest(xs: Float32Array, k: number): number {
  // The k-th largest is the (n − k)-th smallest, 0-based.
  const target = xs.length - k;
  let lo = 0;
  let hi = xs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const a = xs[lo]!;
    const b = xs[mid]!;
    const c = xs[hi]!;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (xs[i]! < pivot) i++;
      while (xs[j]! > pivot) j--;
      if (i <= j) {
        const t = xs[i]!;
        xs[i] = xs[j]!;
        xs[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return xs[target]!;
  }
  return xs[target]!;
}
