import type { MergeMethod } from '../method.js';
import { dare } from './dare.js';
import { linear } from './linear.js';
import { slerp } from './slerp.js';
import { taskArithmetic } from './task-arithmetic.js';
import { ties } from './ties.js';

/** Merge methods by name: one file each in this folder, one line each here. */
export const mergeMethods: ReadonlyMap<string, MergeMethod<never, never>> = new Map(
  ([linear, taskArithmetic, ties, dare, slerp] as unknown as MergeMethod<never, never>[]).map((m) => [m.name, m]),
);
