import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { majorityScore } from '../src/ml/baseline.js';
import { readDataset, writeDataset } from '../src/ml/data/dataset-io.js';
import { FETA_FEW_SHOT, FRIENDS_TASKS, friendsAvailable } from '../src/ml/data/friends.js';
import { readTestScenes, shareSceneSplit } from '../src/ml/data/scene-split.js';
import { generateSynthetic } from '../src/ml/data/synthetic.js';
import { initEncoder, type EncoderKind, type ModelConfig } from '../src/ml/model.js';
import { Rng } from '../src/ml/random.js';
import { loadTf } from '../src/ml/tf.js';
import { evaluate, toVars, train } from '../src/ml/train.js';
import { buildVocab } from '../src/ml/vocab.js';
import { round } from './util.js';

/**
 * Training and evaluation throughput of the encoders on each backend (the cpu backend is the
 * baseline in the same run), and, when shared/data/friends is present, the Friends emotion
 * tasks (on the shared scene split) against their majority baselines.
 */
export async function benchMl(): Promise<unknown> {
  const tf = await loadTf('wasm');
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-bench-ml-'));
  const syn = generateSynthetic({ seed: 0, scenes: 3000, sizes: { train: 1500, dev: 200, test: 400 }, tasks: ['emotion'] });
  writeDataset(dir, 'synthetic', syn.tasks, syn.dialogues, syn.examples, {});
  const ds = readDataset(dir);
  const vocab = buildVocab(ds, 8000, 1);
  const throughput: Record<string, unknown>[] = [];
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    for (const encoder of ['bow', 'cnn'] as EncoderKind[]) {
      const cfg: ModelConfig = { encoder, vocabSize: vocab.tokens.length, embedDim: 64, hidden: 96, kernel: 3, maxLen: 128, seed: 0, tasks: {} };
      const n = backend === 'cpu' ? 64 : 1500; // the cpu backend is ~200× slower: fewer examples, same rate
      const m = { cfg, weights: initEncoder(cfg), vocab: '' };
      const t0 = performance.now();
      const r = train(tf, m, ds, vocab, { tasks: ['emotion'], epochs: 1, lr: 0.01, batchSize: 32, seed: 0, mixing: 'size', temperature: 1, patience: 1, maxTrain: n }, () => {});
      const trainSecs = (performance.now() - t0) / 1000;
      const vars = toVars(tf, r.weights);
      const t1 = performance.now();
      const e = evaluate(tf, m.cfg, vars, ds, vocab, 'emotion', backend === 'cpu' ? 'dev' : 'test');
      const evalSecs = (performance.now() - t1) / 1000;
      vars.forEach((v) => v.dispose());
      const row = { backend, encoder, train_examples: n, train_examples_per_s: round(n / trainSecs, 1), eval_examples: e.examples, eval_examples_per_s: round(e.examples / evalSecs, 1) };
      throughput.push(row);
      process.stderr.write(`ml ${JSON.stringify(row)}\n`);
    }
  }
  await tf.setBackend('wasm');
  const rate = (b: string, enc: string, k: 'train_examples_per_s' | 'eval_examples_per_s'): number => throughput.find((r) => r.backend === b && r.encoder === enc)![k] as number;
  const ratios = Object.fromEntries(['bow', 'cnn'].flatMap((enc) => [
    [`${enc}_train_wasm_vs_cpu`, round(rate('wasm', enc, 'train_examples_per_s') / rate('cpu', enc, 'train_examples_per_s'))],
    [`${enc}_eval_wasm_vs_cpu`, round(rate('wasm', enc, 'eval_examples_per_s') / rate('cpu', enc, 'eval_examples_per_s'))],
  ]));
  rmSync(dir, { recursive: true, force: true });

  const friendsDir = new URL('../../../shared/data/friends', import.meta.url).pathname;
  let friends: unknown = 'skipped: ../shared/data/friends not present';
  if (existsSync(friendsDir) && friendsAvailable(friendsDir)) {
    const fdir = mkdtempSync(join(tmpdir(), 'dfwe-bench-friends-'));
    const tasks = ['emory_emotion_recognition', 'MELD_emotion_recognition'];
    const loaded = tasks.map((t) => FRIENDS_TASKS[t]!.load(friendsDir));
    // The split every Friends pipeline uses (prepare-data): FETA's test scenes, the rest by scene.
    shareSceneSplit(loaded, readTestScenes(friendsDir), '0');
    const examples = Object.fromEntries(loaded.map((l) => {
      const [tr, dv] = FETA_FEW_SHOT[l.info.name]!;
      return [l.info.name, { train: new Rng(`bench:${l.info.name}:train`).sample(l.splits.train, tr), dev: new Rng(`bench:${l.info.name}:dev`).sample(l.splits.dev, dv), test: l.splits.test }];
    }));
    writeDataset(fdir, 'friends', loaded.map((l) => l.info), loaded.flatMap((l) => l.dialogues), examples, {});
    const fds = readDataset(fdir);
    const fv = buildVocab(fds, 8000, 1);
    const rows: Record<string, unknown>[] = [];
    for (const task of tasks) {
      const cfg: ModelConfig = { encoder: 'cnn', vocabSize: fv.tokens.length, embedDim: 64, hidden: 96, kernel: 3, maxLen: 128, seed: 0, tasks: {} };
      const m = { cfg, weights: initEncoder(cfg), vocab: '' };
      const t0 = performance.now();
      const r = train(tf, m, fds, fv, { tasks: [task], target: task, epochs: 8, lr: 0.003, batchSize: 32, seed: 0, mixing: 'size', temperature: 1, patience: 3 }, () => {});
      const vars = toVars(tf, r.weights);
      const test = evaluate(tf, m.cfg, vars, fds, fv, task, 'test');
      vars.forEach((v) => v.dispose());
      const row = { task, train: fds.manifest.counts[task]!.train, test: test.examples, score: round(test.score), majority_score: round(majorityScore(fds, task)), metrics: test.metrics, seconds: round((performance.now() - t0) / 1000, 1) };
      rows.push(row);
      process.stderr.write(`friends ${JSON.stringify(row)}\n`);
    }
    friends = rows;
    rmSync(fdir, { recursive: true, force: true });
  }
  return { machine: { node: process.version }, throughput, ratios, friends_emotion: friends };
}
