import type { Dataset } from '../src/ml/data/dataset-io.js';
import { initEncoder, type ModelConfig } from '../src/ml/model.js';
import { ensureHeads } from '../src/ml/train.js';
import type { Vocab } from '../src/ml/vocab.js';

/** An untrained cnn with a head for every task of the dataset. */
export function untrainedModel(ds: Dataset, vocab: Vocab, maxLen: number, seed = 3, itemHeads = false): { cfg: ModelConfig; weights: ReturnType<typeof initEncoder>; vocab: string } {
  const cfg: ModelConfig = { encoder: 'cnn', vocabSize: vocab.tokens.length, embedDim: 8, hidden: 12, kernel: 3, maxLen, seed, ...(itemHeads ? { itemHeads } : {}), tasks: {} };
  const m = { cfg, weights: initEncoder(cfg), vocab: '' };
  ensureHeads(m, Object.values(ds.manifest.tasks));
  return m;
}
