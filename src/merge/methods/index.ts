import type { MergeMethod } from '../method.js';
import { breadcrumbs } from './breadcrumbs.js';
import { dare } from './dare.js';
import { dareTies } from './dare-ties.js';
import { della } from './della.js';
import { linear } from './linear.js';
import { modelStock } from './model-stock.js';
import { multislerp } from './multislerp.js';
import { slerp } from './slerp.js';
import { taskArithmetic } from './task-arithmetic.js';
import { ties } from './ties.js';

/** Merge methods by name: one file each in this folder, one line each here. */
export const mergeMethods: ReadonlyMap<string, MergeMethod<never, never>> = new Map(
  ([linear, taskArithmetic, ties, dare, dareTies, della, breadcrumbs, modelStock, slerp, multislerp] as unknown as MergeMethod<never, never>[]).map((m) => [m.name, m]),
);
