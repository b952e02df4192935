import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { StageInputError } from '../stage-type.js';

/*
 * The ML runtime: which TensorFlow.js backend runs the stages. Order: tfjs-node-gpu (installed
 * and a GPU visible) → tfjs-node → wasm (SIMD) → cpu. The node packages download libtensorflow
 * when installed, so they are optional: a GPU user adds `@tensorflow/tfjs-node-gpu`. The
 * engine computes the identity (backend, tfjs version, Node major) without loading tfjs: it
 * joins the keys of ML stages, since numbers differ across backends.
 */

const require = createRequire(import.meta.url);

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const PACKAGE: Record<BackendName, string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs',
};

function installed(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

function gpuVisible(): boolean {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) return visible.trim() !== '' && visible.trim() !== '-1';
  return existsSync('/dev') && readdirSync('/dev').some((d) => /^nvidia\d+$/.test(d));
}

/** The backend to use: the requested one (if installed), else the first available in order. */
export function chooseBackend(requested?: string): BackendName {
  if (requested !== undefined && requested !== 'auto') {
    if (!BACKENDS.includes(requested as BackendName)) throw new StageInputError(`unknown backend "${requested}"; use one of auto, ${BACKENDS.join(', ')}`);
    const b = requested as BackendName;
    if (!installed(PACKAGE[b])) throw new StageInputError(`backend ${b} needs ${PACKAGE[b]}: npm install ${PACKAGE[b]}`);
    return b;
  }
  if (installed(PACKAGE['tensorflow-gpu']) && gpuVisible()) return 'tensorflow-gpu';
  if (installed(PACKAGE.tensorflow)) return 'tensorflow';
  return 'wasm';
}

export function tfjsVersion(): string {
  return (require('@tensorflow/tfjs/package.json') as { version: string }).version;
}

/** What enters the keys of ML stages: results are bit-identical only within one of these. */
export function runtimeIdentity(backend: BackendName): Record<string, string> {
  return { backend, tfjs: tfjsVersion(), node: process.versions.node.split('.')[0]! };
}
