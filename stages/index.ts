import type { StageType } from '../src/stage-type.js';
import { prepareData } from './prepare-data.js';

/** Built-in stage types by name: one file each in this folder, one line each here. */
export const registry: ReadonlyMap<string, StageType> = new Map<string, StageType>([
  [prepareData.name, prepareData],
]);
