import type { StageType } from '../src/stage-type.js';
import { evaluate } from './evaluate.js';
import { finetune } from './finetune.js';
import { initModel } from './init-model.js';
import { interpolate } from './interpolate.js';
import { merge } from './merge.js';
import { mergeSearch } from './merge-search.js';
import { prepareData } from './prepare-data.js';
import { pretrain } from './pretrain.js';
import { trainExpert } from './train-expert.js';
import { vocab } from './vocab.js';

/** Built-in stage types by name: one file each in this folder, one line each here. */
export const registry: ReadonlyMap<string, StageType> = new Map<string, StageType>([
  [prepareData.name, prepareData],
  [vocab.name, vocab],
  [initModel.name, initModel],
  [pretrain.name, pretrain],
  [trainExpert.name, trainExpert],
  [finetune.name, finetune],
  [interpolate.name, interpolate],
  [evaluate.name, evaluate],
  [merge.name, merge],
  [mergeSearch.name, mergeSearch],
]);
