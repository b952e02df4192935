/*
 * Pieces of stage parameter schemas that several stage types share. Plain data: stage
 * descriptors import this, and planning must not load anything heavier than it.
 */

export const PATH = { type: 'string', minLength: 1 } as const;

/** The inputs every model stage reads: the dataset, its vocabulary, and a model. */
export const MODEL_INPUTS = {
  data: { ...PATH, description: 'The dataset (prepare-data)' },
  vocab: { ...PATH, description: 'The vocabulary (vocab)' },
  model: { ...PATH, description: 'The model to start from' },
} as const;

/** Training parameters common to train-expert and finetune, with their defaults. */
export const TRAIN_PARAMS = {
  epochs: { type: 'integer', minimum: 1, default: 5, description: 'Epoch budget (fewer with early stopping)' },
  lr: { type: 'number', exclusiveMinimum: 0, default: 0.01, description: 'Adam learning rate' },
  batch_size: { type: 'integer', minimum: 1, default: 32, description: 'Examples per batch' },
  seed: { type: 'integer', default: 0, description: 'Seed of the batch order' },
  patience: { type: 'integer', minimum: 1, default: 2, description: 'Epochs without dev improvement before stopping (with a target)' },
  max_train: { type: 'integer', minimum: 1, description: 'Use at most this many training examples per task' },
  max_len: { type: 'integer', minimum: 16, description: "Tokens per example from this stage on (default: the model's own; cnn and bow only, whose weights do not depend on it)" },
} as const;
