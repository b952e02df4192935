import type { ExecutorKind } from '../../executor.js';
import { local } from './local.js';
import { slurm } from './slurm.js';

/** Executors by name: one file each in this folder, one line each here. */
export const executors: ReadonlyMap<string, ExecutorKind> = new Map<string, ExecutorKind>([
  [local.name, local],
  [slurm.name, slurm],
]);
