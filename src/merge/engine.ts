import { basename } from 'node:path';
import { CheckpointReader, CheckpointWriter, openCheckpoint, type Checkpoint } from '../checkpoint/checkpoint.js';
import { decode, DTYPE_BYTES, encode, isFloatDtype, type FloatDtype } from '../checkpoint/dtype.js';
import { StageInputError } from '../stage-type.js';
import type { MergeMethod, TensorContext } from './method.js';
import { globMatcher } from './patterns.js';

/*
 * Merging checkpoints tensor by tensor, chunk by chunk: memory stays at a few chunks per input
 * (plus one tensor's worth of scratch for methods that look at a whole tensor first, as TIES
 * does), whatever the size of the models. Floating tensors chosen by include/exclude are
 * merged, accumulating in float64, and written back in the first model's dtype; the others are
 * copied from the first model. The result has the first model's layout.
 */

/**
 * Elements per chunk: 256 KiB of float32 per input and 512 KiB of float64 accumulator, small
 * enough for the loops to run in the CPU's caches (measured: 1M-element chunks were slower).
 */
const CHUNK = 1 << 16;

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
}

export function planMerge(setup: MergeSetup): MergePlan {
  const { method } = setup;
  const k = setup.models.length;
  if (k < method.minModels) throw new StageInputError(`method ${method.name} needs at least ${method.minModels} model${method.minModels === 1 ? '' : 's'}, not ${k}`);
  if (method.maxModels !== undefined && k > method.maxModels) throw new StageInputError(`method ${method.name} merges at most ${method.maxModels} models, not ${k}`);
  if (method.needsBase && !setup.base) throw new StageInputError(`method ${method.name} needs a base model ("base"): it merges task vectors θᵢ − θ_base`);
  const labels = setup.labels ?? setup.models;
  const models = setup.models.map(openCheckpoint);
  const base = setup.base ? openCheckpoint(setup.base) : undefined;
  const first = models[0]!;
  const include = setup.include?.length ? globMatcher(setup.include) : () => true;
  const exclude = setup.exclude?.length ? globMatcher(setup.exclude) : () => false;
  const groupPatterns = (setup.groups ?? []).map((p) => globMatcher([p]));
  const groupOf = new Map<string, number>();
  let other = false;
  let largest = 0;
  for (const [name, t] of first.tensors) {
    if (!isFloatDtype(t.dtype) || !include(name) || exclude(name)) continue;
    models.forEach((m, i) => check(name, t, m, labels[i]!, labels[0]!));
    if (base) check(name, t, base, `the base (${setup.base})`, labels[0]!);
    let g = groupPatterns.findIndex((match) => match(name));
    if (g < 0) {
      g = groupPatterns.length;
      other = true;
    }
    groupOf.set(name, g);
    largest = Math.max(largest, t.bytes / DTYPE_BYTES[t.dtype]!);
  }
  // Another model's tensors that the first lacks matter only if they would be merged: a task head
  // left out by include or exclude (each expert's own) is no mismatch.
  models.forEach((m, i) => {
    const extra = [...m.tensors.keys()].filter((n) => !first.tensors.has(n) && include(n) && !exclude(n));
    if (extra.length) throw new StageInputError(`${labels[i]} has tensor${extra.length === 1 ? '' : 's'} ${extra.slice(0, 3).map((n) => `"${n}"`).join(', ')} that ${labels[0]} lacks: merged models must share one architecture`);
  });
  if (groupOf.size === 0) throw new StageInputError(`no floating-point tensor of ${labels[0]} is chosen for merging${setup.include?.length ? ` (include: ${setup.include.join(', ')})` : ''}`);
  // A group that holds no tensor (a typo, or one an earlier group took) is a mistake, as an include matching nothing is.
  const used = new Set(groupOf.values());
  const empty = (setup.groups ?? []).filter((_, g) => !used.has(g));
  if (empty.length) throw new StageInputError(`group${empty.length === 1 ? '' : 's'} ${empty.map((p) => `"${p}"`).join(', ')} match${empty.length === 1 ? 'es' : ''} no merged tensor of ${labels[0]} (a tensor goes to the first group it matches); each group gets weights of its own, so one that holds none is a mistake`);
  const groupNames = [...(setup.groups ?? [])];
  if (other) groupNames.push('(other tensors)');
  return { setup, models, base, groupOf, groupNames, largest };
}

function check(name: string, ref: { dtype: string; shape: number[] }, m: Checkpoint, label: string, refLabel: string): void {
  const t = m.tensors.get(name);
  // The file only when it says more than the label (a shard of a model directory), never the same path twice.
  const where = (c: Checkpoint, l: string): string => (basename(c.path) === l || c.path === l || c.path.endsWith(`/${l.replace(/^\.\//, '')}`) ? l : `${l} (${c.path})`);
  if (!t) throw new StageInputError(`tensor "${name}" is in ${refLabel} but not in ${where(m, label)}: merged models must share one architecture`);
  if (t.shape.join('x') !== ref.shape.join('x')) throw new StageInputError(`tensor "${name}" has shape [${t.shape}] in ${where(m, label)} and [${ref.shape}] in ${refLabel}`);
  if (t.dtype !== ref.dtype) throw new StageInputError(`tensor "${name}" is ${t.dtype} in ${where(m, label)} and ${ref.dtype} in ${refLabel}`);
}

/**
 * Write the merge with `weights[g]` (one weight per model) for group g into directory `out`, in
 * the first model's layout with its other files.
 */
export function writeMerge(plan: MergePlan, weights: number[][], out: string): void {
  const { method, params } = plan.setup;
  const k = plan.models.length;
  if (weights.length !== plan.groupNames.length || weights.some((w) => w.length !== k)) {
    throw new Error(`internal: ${weights.length}×${weights[0]?.length} weights for ${plan.groupNames.length} groups of ${k} models`);
  }
  const readers = plan.models.map((m) => new CheckpointReader(m));
  const baseReader = plan.base ? new CheckpointReader(plan.base) : undefined;
  const writer = new CheckpointWriter(plan.models[0]!, out);
  // One raw buffer and one float32 buffer per input slot, reused for every chunk of every tensor.
  const raw: (Buffer | undefined)[] = new Array(k + 1);
  const f32: (Float32Array | undefined)[] = new Array(k + 1);
  const acc = new Float64Array(CHUNK);
  let encoded = new Uint8Array(CHUNK * 8);
  try {
    for (const name of writer.names) {
      const info = plan.models[0]!.tensors.get(name)!;
      const g = plan.groupOf.get(name);
      if (g === undefined) {
        // Not merged: the first model's bytes, in chunks.
        for (let off = 0; off < info.bytes || off === 0; off += CHUNK * 4) {
          const len = Math.min(CHUNK * 4, info.bytes - off);
          raw[0] = readers[0]!.read(name, raw[0], off, len);
          writer.write(name, raw[0]);
          if (info.bytes === 0) break;
        }
        continue;
      }
      const dtype = info.dtype as FloatDtype;
      const width = DTYPE_BYTES[dtype]!;
      const size = info.bytes / width;
      const read = (slot: number | 'base', start: number, n: number): Float32Array => {
        const i = slot === 'base' ? k : slot;
        const reader = slot === 'base' ? baseReader! : readers[i]!;
        raw[i] = reader.read(name, raw[i] && raw[i]!.length >= n * width ? raw[i] : Buffer.allocUnsafeSlow(Math.max(CHUNK, n) * width), start * width, n * width);
        if (dtype === 'F32') return new Float32Array(raw[i]!.buffer, raw[i]!.byteOffset, n);
        if (!f32[i] || f32[i]!.length < n) f32[i] = new Float32Array(Math.max(CHUNK, n));
        return decode(raw[i]!, dtype, f32[i]);
      };
      const ctx: TensorContext<never> = { name, size, weights: weights[g]!, params: params as never, k, read };
      const state = method.prepare?.(ctx);
      if (size === 0) writer.write(name, new Uint8Array(0));
      for (let start = 0; start < size; start += CHUNK) {
        const n = Math.min(CHUNK, size - start);
        const out64 = acc.subarray(0, n);
        method.chunk(ctx, state as never, start, n, out64);
        if (encoded.byteLength < n * width) encoded = new Uint8Array(n * width);
        writer.write(name, encode(out64, dtype, encoded));
      }
    }
    writer.close();
  } finally {
    readers.forEach((r) => r.close());
    baseReader?.close();
  }
}
