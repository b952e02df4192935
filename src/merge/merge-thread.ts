import { closeSync, openSync } from 'node:fs';
import { CheckpointReader, type TensorPosition } from '../checkpoint/checkpoint.js';
import { decode, DTYPE_BYTES, type FloatDtype } from '../checkpoint/dtype.js';
import { writeAll } from '../checkpoint/safetensors.js';
import { stepOf, rowLength, type MergePlan } from './merge-plan.js';
import { KernelMemory } from './kernels.js';
import type { TensorContext } from './method.js';

/*
 * One thread's share of a merge: it takes work items (a tensor's whole-tensor pass, a range of a
 * tensor to merge, a range to copy) in any order and writes each range at its place in the
 * output files. An element's value depends only on the inputs, the weights and its index, never
 * on which thread merged it or how the tensor was cut up, so the bytes are the same for any
 * number of threads.
 */

/** What one merge gives every thread: the weights, and where each tensor goes. */
export interface MergeJob {
  weights: number[][];
  positions: Map<string, TensorPosition>;
}

export type MergeItem =
  | { kind: 'prepare'; tensor: string }
  | { kind: 'merge'; tensor: string; start: number; n: number; state: unknown }
  | { kind: 'copy'; tensor: string; from: number; bytes: number };




export class MergeThread {
  private readers: CheckpointReader[] = [];
  private baseReader?: CheckpointReader;
  private readonly memory: KernelMemory;
  private readonly outputs = new Map<string, number>();
  private copyBuffer?: Buffer;
  private job?: MergeJob;

  constructor(
    private readonly plan: MergePlan,
    module?: WebAssembly.Module,
  ) {
    this.memory = new KernelMemory(plan.models.length + 1, plan.largestStep, module);
  }

  /** Starts a merge: its weights and where each tensor goes. Files are opened as they are needed and closed at its end. */
  begin(job: MergeJob): void {
    this.job = job;
    this.readers = this.plan.models.map((m) => new CheckpointReader(m));
    this.baseReader = this.plan.base ? new CheckpointReader(this.plan.base) : undefined;
  }

  /** Ends a merge: every file it opened is closed. */
  end(): void {
    this.readers.forEach((r) => r.close());
    this.baseReader?.close();
    for (const fd of this.outputs.values()) closeSync(fd);
    this.outputs.clear();
    this.job = undefined;
  }

  private get positions(): Map<string, TensorPosition> {
    return this.job!.positions;
  }

  /** Runs one item; a prepare item's result is the tensor's state, posted to whoever merges its ranges. */
  run(item: MergeItem): unknown {
    if (item.kind === 'copy') return this.copy(item.tensor, item.from, item.bytes);
    const ctx = this.context(item.tensor);
    const method = this.plan.setup.method;
    if (item.kind === 'prepare') return method.prepare!(ctx);
    const info = this.plan.models[0]!.tensors.get(item.tensor)!;
    const dtype = info.dtype as FloatDtype;
    const width = DTYPE_BYTES[dtype]!;
    const pos = this.positions.get(item.tensor)!;
    const fd = this.output(pos.file);
    for (let start = item.start; start < item.start + item.n; start += ctx.step) {
      const n = Math.min(ctx.step, item.start + item.n - start);
      const out = this.memory.acc.subarray(0, n);
      method.chunk(ctx, item.state as never, start, n, out);
      writeAll(fd, this.memory.encode(dtype, n), pos.offset + start * width);
    }
    return undefined;
  }

  private context(name: string): TensorContext<never> {
    const info = this.plan.models[0]!.tensors.get(name)!;
    const dtype = info.dtype as FloatDtype;
    const width = DTYPE_BYTES[dtype]!;
    const k = this.plan.models.length;
    const memory = this.memory;
    const step = stepOf(this.plan, info.shape);
    // A slot's bytes, undecoded: float32 values land in its f32 array, 16-bit ones in its raw bytes.
    const readRaw = (slot: number | 'base', start: number, n: number): Uint8Array => {
      if (n > memory.chunk) throw new Error(`internal: read of ${n} elements, more than a step (${memory.chunk})`);
      const i = slot === 'base' ? k : slot;
      const reader = slot === 'base' ? this.baseReader! : this.readers[i]!;
      const s = memory.slots[i]!;
      const into = dtype === 'F32' ? Buffer.from(s.f32.buffer, s.f32.byteOffset, n * 4) : Buffer.from(s.raw.buffer, s.raw.byteOffset, n * width);
      return reader.read(name, into, start * width, n * width);
    };
    const read = (slot: number | 'base', start: number, n: number): Float32Array => {
      const raw = readRaw(slot, start, n);
      const s = memory.slots[slot === 'base' ? k : slot]!;
      if (dtype === 'F32') return s.f32.subarray(0, n);
      return dtype === 'F64' ? decode(raw, 'F64', s.f32.subarray(0, n)) : memory.decode(slot === 'base' ? k : slot, dtype, n);
    };
    return {
      name,
      size: info.bytes / width,
      weights: this.job!.weights[this.plan.groupOf.get(name)!]!,
      params: this.plan.setup.params as never,
      k,
      hasBase: this.plan.base !== undefined,
      rowLength: rowLength(info.shape),
      step,
      read,
      sumOf: (out, models, ws, start, n, base) => {
        if (dtype === 'F64') {
          memory.weightedSum(out, models.map((i) => read(i, start, n)), ws, n, base ? read('base', start, n) : undefined);
          return;
        }
        memory.weightedSum(out, models.map((i) => readRaw(i, start, n)), ws, n, base ? readRaw('base', start, n) : undefined, dtype);
      },
    };
  }

  private copy(name: string, from: number, bytes: number): undefined {
    this.copyBuffer ??= Buffer.allocUnsafeSlow(COPY_BYTES);
    const pos = this.positions.get(name)!;
    const fd = this.output(pos.file);
    for (let off = from; off < from + bytes; off += COPY_BYTES) {
      const len = Math.min(COPY_BYTES, from + bytes - off);
      writeAll(fd, this.readers[0]!.read(name, this.copyBuffer, off, len), pos.offset + off);
    }
    return undefined;
  }

  private output(file: string): number {
    let fd = this.outputs.get(file);
    if (fd === undefined) {
      fd = openSync(file, 'r+');
      this.outputs.set(file, fd);
    }
    return fd;
  }

}

/** Bytes per read and write when copying a tensor that is not merged. */
export const COPY_BYTES = 4 << 20;
