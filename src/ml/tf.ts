import type * as TF from '@tensorflow/tfjs';
import type { BackendName } from './runtime.js';
import { StageInputError } from '../stage-type.js';

/*
 * Loads TensorFlow.js on the chosen backend, once per process (only ML stage processes do).
 * On wasm it also:
 *   - registers UnsortedSegmentSum, which wasm lacks and the embedding (gather) gradient needs;
 *   - wraps BatchMatMul so transposed operands are transposed explicitly first: measured here,
 *     wasm's transposed matmul runs at ~1 GFLOP/s against ~20 for the plain one, and every
 *     dense layer's gradient multiplies by a transpose;
 *   - replaces two kernels whose generic wasm loops took almost half of a training step's
 *     kernel time (tf.profile of a cnn epoch: Equal 29%, GatherV2 17%, BatchMatMul 21%): the
 *     embedding lookup (GatherV2 on axis 0) as row copies, and Equal with broadcasting (max
 *     pooling's gradient) as one strided pass. Both are exact, so results do not change.
 */

export type Tf = typeof TF;
let loaded: Promise<Tf> | undefined;

export function loadTf(backend: BackendName): Promise<Tf> {
  loaded ??= (async () => {
    if (backend === 'tensorflow-gpu') await import('@tensorflow/tfjs-node-gpu' as string);
    else if (backend === 'tensorflow') await import('@tensorflow/tfjs-node' as string);
    const tf = await import('@tensorflow/tfjs');
    if (backend === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
      registerWasmKernels(tf);
    }
    // tfjs logs to the console on some backends; stage logs should hold only our lines.
    tf.env().set('PROD', true);
    const ok = await tf.setBackend(backend);
    if (!ok) throw new StageInputError(`TensorFlow.js backend ${backend} failed to initialise`);
    await tf.ready();
    return tf;
  })();
  return loaded;
}

interface WasmBackend {
  makeOutput(shape: number[], dtype: string): TF.TensorInfo;
  typedArrayFromHeap(t: TF.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** Replace a wasm kernel, keeping the original for the cases the replacement does not take. */
function override(tf: Tf, name: string, make: (original: TF.KernelConfig) => TF.KernelFunc): void {
  const original = tf.getKernel(name, 'wasm');
  if (!original || (original as { dfweWrapped?: boolean }).dfweWrapped) return;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ kernelName: name, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc: make(original), dfweWrapped: true } as TF.KernelConfig);
}

/** GatherV2 along axis 0 (an embedding lookup): one row copy per index. */
function gatherRows(original: TF.KernelConfig): TF.KernelFunc {
  return (args) => {
    const { x, indices } = args.inputs as { x: TF.TensorInfo; indices: TF.TensorInfo };
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    if ((axis !== 0 && axis !== -x.shape.length) || batchDims !== 0 || x.shape.length < 1 || indices.dtype !== 'int32') return original.kernelFunc(args);
    const b = args.backend as unknown as WasmBackend;
    const rows = x.shape[0]!;
    const inner = x.shape.slice(1).reduce((a, d) => a * d, 1);
    const out = b.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const dst = b.typedArrayFromHeap(out);
    const src = b.typedArrayFromHeap(x);
    const ids = b.typedArrayFromHeap(indices);
    for (let i = 0; i < ids.length; i++) {
      const r = ids[i]!;
      if (r < 0 || r >= rows) throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
      dst.set(src.subarray(r * inner, (r + 1) * inner), i * inner);
    }
    return out;
  };
}

/** Equal with broadcasting, in one pass with the inputs' strides (0 along a broadcast dimension). */
function equalBroadcast(original: TF.KernelConfig): TF.KernelFunc {
  return (args) => {
    const { a, b: bIn } = args.inputs as { a: TF.TensorInfo; b: TF.TensorInfo };
    if (a.dtype !== bIn.dtype || a.dtype === 'string' || a.dtype === 'complex64') return original.kernelFunc(args);
    const rank = Math.max(a.shape.length, bIn.shape.length);
    const pad = (s: number[]): number[] => [...new Array<number>(rank - s.length).fill(1), ...s];
    const as = pad(a.shape);
    const bs = pad(bIn.shape);
    const shape = as.map((d, i) => (d === 1 ? bs[i]! : d));
    if (as.some((d, i) => d !== bs[i] && d !== 1 && bs[i] !== 1)) return original.kernelFunc(args);
    const strides = (s: number[]): number[] => {
      const out = new Array<number>(rank).fill(0);
      let acc = 1;
      for (let i = rank - 1; i >= 0; i--) {
        out[i] = s[i] === 1 && shape[i] !== 1 ? 0 : acc;
        acc *= s[i]!;
      }
      return out;
    };
    const sa = strides(as);
    const sb = strides(bs);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput(shape, 'bool');
    const dst = backend.typedArrayFromHeap(out);
    const x = backend.typedArrayFromHeap(a);
    const y = backend.typedArrayFromHeap(bIn);
    const n = shape.reduce((p, d) => p * d, 1);
    if (n === 0 || rank === 0) {
      if (n === 1) dst[0] = x[0] === y[0] ? 1 : 0;
      return out;
    }
    const last = rank - 1;
    const width = shape[last]!;
    const [da, db] = [sa[last]!, sb[last]!];
    // An odometer over the outer dimensions; a tight loop along the innermost one.
    const idx = new Array<number>(last).fill(0);
    let ia = 0;
    let ib = 0;
    for (let k = 0; k < n; k += width) {
      for (let j = 0, pa = ia, pb = ib; j < width; j++, pa += da, pb += db) dst[k + j] = x[pa] === y[pb] ? 1 : 0;
      for (let d = last - 1; d >= 0; d--) {
        idx[d]!++;
        ia += sa[d]!;
        ib += sb[d]!;
        if (idx[d]! < shape[d]!) break;
        ia -= sa[d]! * shape[d]!;
        ib -= sb[d]! * shape[d]!;
        idx[d] = 0;
      }
    }
    return out;
  };
}

function registerWasmKernels(tf: Tf): void {
  override(tf, 'GatherV2', gatherRows);
  override(tf, 'Equal', equalBroadcast);
  if (!tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    tf.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend, attrs }) => {
        const { x, segmentIds } = inputs as { x: TF.TensorInfo; segmentIds: TF.TensorInfo };
        const numSegments = (attrs as { numSegments: number }).numSegments;
        const b = backend as unknown as WasmBackend;
        const inner = x.shape.slice(1).reduce((a, d) => a * d, 1);
        const out = b.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
        const dst = b.typedArrayFromHeap(out);
        const src = b.typedArrayFromHeap(x);
        const ids = b.typedArrayFromHeap(segmentIds);
        dst.fill(0);
        // Sequential and in index order: the same sums in the same order every run.
        for (let i = 0; i < ids.length; i++) {
          const s = ids[i]!;
          if (s < 0 || s >= numSegments) continue;
          const o = s * inner;
          const r = i * inner;
          for (let j = 0; j < inner; j++) dst[o + j]! += src[r + j]!;
        }
        return out;
      },
    });
  }
  const original = tf.getKernel('BatchMatMul', 'wasm');
  if (original && !(original as { dfweWrapped?: boolean }).dfweWrapped) {
    tf.unregisterKernel('BatchMatMul', 'wasm');
    const wrapped = {
      kernelName: 'BatchMatMul',
      backendName: 'wasm',
      dfweWrapped: true,
      setupFunc: original.setupFunc, // binds the wasm function when the backend starts
      kernelFunc: (args: Parameters<TF.KernelFunc>[0]) => {
        const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
        if (!attrs.transposeA && !attrs.transposeB) return original.kernelFunc(args);
        const { a, b } = args.inputs as { a: TF.TensorInfo; b: TF.TensorInfo };
        const transposeKernel = tf.getKernel('Transpose', 'wasm')!;
        const swapLast = (t: TF.TensorInfo): TF.TensorInfo => {
          const perm = t.shape.map((_, i) => i);
          [perm[perm.length - 1], perm[perm.length - 2]] = [perm[perm.length - 2]!, perm[perm.length - 1]!];
          return transposeKernel.kernelFunc({ inputs: { x: t }, backend: args.backend, attrs: { perm } }) as TF.TensorInfo;
        };
        const ta = attrs.transposeA ? swapLast(a) : a;
        const tb = attrs.transposeB ? swapLast(b) : b;
        const result = original.kernelFunc({ ...args, inputs: { ...args.inputs, a: ta, b: tb }, attrs: { ...attrs, transposeA: false, transposeB: false } }) as TF.TensorInfo;
        for (const t of [ta, tb]) if (t !== a && t !== b) (args.backend as unknown as { disposeData(id: object): void }).disposeData(t.dataId);
        return result;
      },
    };
    tf.registerKernel(wrapped as TF.KernelConfig);
  }
}
