import type * as TF from '@tensorflow/tfjs';
import type { BackendName } from './runtime.js';
import { StageInputError } from '../stage-type.js';

/*
 * Loads TensorFlow.js on the chosen backend, once per process (only ML stage processes do).
 * On wasm it also:
 *   - registers UnsortedSegmentSum, which wasm lacks and the embedding (gather) gradient needs;
 *   - wraps BatchMatMul so transposed operands are transposed explicitly first: measured here,
 *     wasm's transposed matmul runs at ~1 GFLOP/s against ~20 for the plain one, and every
 *     dense layer's gradient multiplies by a transpose.
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
  typedArrayFromHeap(t: TF.TensorInfo): Float32Array | Int32Array;
}

function registerWasmKernels(tf: Tf): void {
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
