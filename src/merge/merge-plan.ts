import type { Checkpoint } from '../checkpoint/checkpoint.js';
import type { MergeMethod } from './method.js';

/* What a merge is: its setup as a stage gives it, and the plan made from it once (checked, opened), which every thread shares. */

export interface MergeSetup {
  /** Checkpoint paths (a file or a directory each). */
  models: string[];
  base?: string;
  method: MergeMethod<never, never>;
  params: Record<string, unknown>;
  /** Tensors to merge (glob patterns over names, `*` any run of characters); default all floating ones. */
  include?: string[];
  exclude?: string[];
  /** Groups with their own weights (a search sets them apart): a tensor is in the first group whose pattern matches; the rest make the last. */
  groups?: string[];
  /** How models are named in errors. */
  labels?: string[];
}

/** Checked and opened once; then merged as often as a search asks, with different weights. */
export interface MergePlan {
  setup: MergeSetup;
  models: Checkpoint[];
  base?: Checkpoint;
  /** Merged tensors' group index; tensors not in it are copied from the first model. */
  groupOf: Map<string, number>;
  /** Group labels: the patterns, then "(other tensors)" when any fall in none. */
  groupNames: string[];
  /** Elements in the largest merged tensor (what scratch memory grows with). */
  largest: number;
  /** The most elements a thread reads per input at once. */
  largestStep: number;
}

/** Elements per kernel call: the inputs, accumulator and output of one call stay in the CPU's caches. */
export const KERNEL_CHUNK = 1 << 14;

/** Elements in a tensor's last dimension (the whole of a 1-D tensor; 1 for a scalar). */
export function rowLength(shape: number[]): number {
  return shape.length === 0 ? 1 : shape[shape.length - 1]!;
}

/** Elements per step through a tensor: KERNEL_CHUNK, or whole rows for methods that need them. */
export function stepOf(plan: MergePlan, shape: number[]): number {
  if (!plan.setup.method.wholeRows) return KERNEL_CHUNK;
  const row = Math.max(1, rowLength(shape));
  return Math.max(row, Math.floor(KERNEL_CHUNK / row) * row);
}
