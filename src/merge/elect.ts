/**
 * TIES' sign election over sparsified task vectors (an entry of 0 is one dropped): the sign of
 * Σ wᵢ dᵢ is elected per element, and the entries that agree with it are summed, weighted, and
 * divided by their weights' sum when `normalize`. out = base + λ · that. An element where the
 * election is a tie (Σ = 0) keeps the base.
 */
export function electedSum(base: Float32Array, deltas: Float64Array[], weights: number[], lambda: number, normalize: boolean, n: number, out: Float64Array): void {
  const k = deltas.length;
  for (let j = 0; j < n; j++) {
    let elect = 0;
    for (let i = 0; i < k; i++) {
      const d = deltas[i]![j]!;
      if (d !== 0) elect += weights[i]! * d;
    }
    let num = 0;
    let den = 0;
    if (elect !== 0) {
      for (let i = 0; i < k; i++) {
        const d = deltas[i]![j]!;
        if (d !== 0 && d > 0 === elect > 0) {
          num += weights[i]! * d;
          den += weights[i]!;
        }
      }
    }
    out[j] = base[j]! + (den !== 0 ? (normalize ? (lambda * num) / den : lambda * num) : 0);
  }
}

const scratch: Float64Array[] = [];

/** k reusable arrays of at least n float64 (a chunk's sparsified task vectors). */
export function deltaArrays(k: number, n: number): Float64Array[] {
  for (let i = 0; i < k; i++) if (!scratch[i] || scratch[i]!.length < n) scratch[i] = new Float64Array(n);
  return scratch.slice(0, k).map((a) => a.subarray(0, n));
}
