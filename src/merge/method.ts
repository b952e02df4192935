/**
 * A merge method is one small file under methods/: its parameters (a JSON Schema with defaults,
 * so they are part of the key), what its per-model weights range over when a search sets them,
 * and a kernel that merges one tensor chunk by chunk (passes over the whole tensor first, where
 * it needs them). Adding a method is that file and a line in methods/index.ts.
 */

export interface TensorContext<P = Record<string, unknown>> {
  /** The tensor's name, for seeding (DARE) and errors. */
  name: string;
  /** Elements in the whole tensor. */
  size: number;
  /** One per model: this tensor's group's weights. */
  weights: number[];
  params: P;
  /** Models merged. */
  k: number;
  /** Whether a base model was given (read('base') needs one). */
  hasBase: boolean;
  /** Elements in one row (the last dimension; the whole tensor when it has one dimension). */
  rowLength: number;
  /** The most elements one read() may ask for: whole-tensor passes go in steps of it. */
  step: number;
  /** Elements [start, start + n) of model i's tensor (or the base's), as float32; valid until the next read of that slot. */
  read(i: number | 'base', start: number, n: number): Float32Array;
  /**
   * out[j] = Σ ws[i]·x_models[i][j] over elements [start, start + n), summed in float64 in order
   * of i (the SIMD kernel, which decodes 16-bit inputs as it sums); with `base`,
   * Σ ws[i]·(x[j] − base[j]), then + base[j]. It reads the models' slots (and the base's).
   */
  sumOf(out: Float64Array, models: number[], ws: number[], start: number, n: number, base: boolean): void;
}

export interface MergeMethod<P = Record<string, unknown>, S = unknown> {
  name: string;
  description: string;
  /** JSON Schema of the method's own parameters (`params` in `with`), with defaults. */
  schema: object;
  /** Problems with parameters that the schema cannot say (how two of them relate). */
  check?(params: P): string[];
  /** Task-vector methods merge θᵢ − θ_base and need the base model. */
  needsBase: boolean;
  minModels: number;
  maxModels?: number;
  /** What to use for more models than maxModels. */
  moreModels?: string;
  /**
   * What a search varies: weights on the simplex (they sum to 1, as the paper's α), or each in
   * [0, 1] (task-vector weights, as mergekit-evolve searches them).
   */
  domain: 'simplex' | 'box';
  /** Weights when none are given. */
  defaultWeights(k: number): number[];
  /** Chunks hold whole rows (a method that ranks each row's entries, as DELLA does). */
  wholeRows?: boolean;
  /**
   * Whole-tensor passes before the chunks (TIES' thresholds, SLERP's angle); undefined when not
   * needed. The state must survive a structured clone: it is posted to the threads that merge the chunks.
   */
  prepare?(t: TensorContext<P>): S;
  /** Fill out[0..n) with merged elements [start, start + n). */
  chunk(t: TensorContext<P>, state: S, start: number, n: number, out: Float64Array): void;
}

export const uniformWeights = (k: number): number[] => new Array(k).fill(1 / k);
export const unitWeights = (k: number): number[] => new Array(k).fill(1);

/** Why k models do not fit the method, or undefined when they do. */
export function modelCountProblem(method: MergeMethod<never, never>, k: number): string | undefined {
  if (k >= method.minModels && (method.maxModels === undefined || k <= method.maxModels)) return undefined;
  const range = method.maxModels === method.minModels ? `exactly ${method.minModels}` : k < method.minModels ? `at least ${method.minModels}` : `at most ${method.maxModels}`;
  return `method ${method.name} merges ${range} model${method.maxModels === 1 && method.minModels === 1 ? '' : 's'}, not ${k}${k > method.minModels && method.moreModels ? ` (${method.moreModels})` : ''}`;
}
