import { readFileSync, writeFileSync } from 'node:fs';
import { readDataset, type Dataset } from './data/dataset-io.js';
import type { StageRunContext } from '../stage-type.js';
import { chooseBackend, type BackendName } from './runtime.js';
import { loadTf, type Tf } from './tf.js';
import { digestBytes } from '../util/hash.js';
import { vocabFromTokens, type Vocab } from './vocab.js';

/** What ML stages share: the runtime the engine chose, and their inputs read from params. */

export async function tfFor(ctx: StageRunContext): Promise<Tf> {
  const backend = (ctx.runtime?.backend as BackendName | undefined) ?? chooseBackend();
  return loadTf(backend);
}

export function dataset(ctx: StageRunContext): Dataset {
  return readDataset(ctx.resolve(String(ctx.params.data)));
}

export function vocabulary(ctx: StageRunContext): { vocab: Vocab; digest: string } {
  const text = readFileSync(ctx.resolve(String(ctx.params.vocab)), 'utf8');
  return { vocab: vocabFromTokens((JSON.parse(text) as { tokens: string[] }).tokens), digest: digestBytes(text) };
}

export function writeVocab(path: string, v: Vocab): void {
  writeFileSync(path, JSON.stringify({ format: 1, tokens: v.tokens }) + '\n');
}

export const PATH = { type: 'string', minLength: 1 } as const;

/** Training parameters common to train-expert and finetune, with their defaults. */
export const TRAIN_PARAMS = {
  epochs: { type: 'integer', minimum: 1, default: 5, description: 'Epoch budget (fewer with early stopping)' },
  lr: { type: 'number', exclusiveMinimum: 0, default: 0.01, description: 'Adam learning rate' },
  batch_size: { type: 'integer', minimum: 1, default: 32, description: 'Examples per batch' },
  seed: { type: 'integer', default: 0, description: 'Seed of the batch order' },
  patience: { type: 'integer', minimum: 1, default: 2, description: 'Epochs without dev improvement before stopping (with a target)' },
  max_train: { type: 'integer', minimum: 1, description: 'Use at most this many training examples per task' },
} as const;

export interface TrainParams {
  epochs?: number;
  lr?: number;
  batch_size?: number;
  seed?: number;
  patience?: number;
  max_train?: number;
}
