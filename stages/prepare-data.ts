import { join } from 'node:path';
import { FRIENDS_TASK_NAMES, SYNTHETIC_TASK_NAMES } from '../src/ml/data/task-names.js';
import type { Dialogue, Example, Split, TaskInfo } from '../src/ml/data/types.js';
import { defineStage, pathInputs, StageInputError } from '../src/stage-type.js';

/** As the stage sees them: the schema's defaults (seed, scenes, few_shot) are filled in. */
const ALL_TASKS = [...SYNTHETIC_TASK_NAMES, ...FRIENDS_TASK_NAMES];

/**
 * Builds a dataset directory (dataset.json, dialogues.jsonl, TASK.SPLIT.jsonl, corpus.txt): the generated
 * synthetic corpus, the Friends datasets in their public formats, or TLiDB's unified JSON.
 */
export const prepareData = defineStage({
  name: 'prepare-data',
  version: 5,
  description: 'Build a multi-task dialogue dataset: synthetic, the Friends files, or TLiDB unified JSON',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['source'],
    properties: {
      source: { enum: ['synthetic', 'friends', 'tlidb'], description: 'synthetic: generated from `seed` (no download); friends: the public Friends files under `path`; tlidb: TLiDB_Friends.json at `path`' },
      path: { type: 'string', minLength: 1, description: 'friends: the folder holding emory_emotion_recognition/, meld_emotion_recognition/, …, feta_splits/; tlidb: the TLiDB_Friends.json file. Its content is part of the key' },
      seed: { type: 'integer', description: 'Seed of the synthetic corpus, of few-shot sampling and of the Friends train/dev split of the scenes', default: 0 },
      scenes: { type: 'integer', minimum: 10, description: 'Synthetic scenes to generate (split 70/15/15 by scene)', default: 1500 },
      train: { type: 'integer', minimum: 0, description: 'Training examples per task (synthetic default 400; friends: the few-shot size)' },
      dev: { type: 'integer', minimum: 0, description: 'Dev examples per task (synthetic default 200; friends: the few-shot size)' },
      test: { type: 'integer', minimum: 0, description: 'Test examples per task (synthetic default 400; friends: all)' },
      train_per_task: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 }, description: 'Training examples for particular tasks (few-shot targets)' },
      few_shot: { type: 'boolean', default: true, description: "friends/tlidb: sample FETA's few-shot train/dev sizes (emory 863/207, RC 950/208, char-ID 1692/387, QA 835/197, PD 55/15, RE 530/130, MELD 999/111)" },
      tasks: { type: 'array', items: { enum: ALL_TASKS }, description: 'Only these tasks (default: all of the source)' },
    },
  },
  outputs: () => ({ data: 'dir' }),
  inputs: (params) => (params.source !== 'synthetic' ? pathInputs(params, ['path']) : []),
  async run(ctx) {
    const [{ writeDataset }, { FETA_FEW_SHOT, FRIENDS_TASKS }, { readTestScenes, shareSceneSplit }, { generateSynthetic }, { loadTlidb }, { Rng }] = await Promise.all([
      import('../src/ml/data/dataset-io.js'), import('../src/ml/data/friends.js'), import('../src/ml/data/scene-split.js'), import('../src/ml/data/synthetic.js'),
      import('../src/ml/data/tlidb.js'), import('../src/ml/random.js'),
    ]);
    const p = ctx.params;
    let tasks: TaskInfo[];
    let dialogues: Dialogue[];
    let examples: Record<string, Record<Split, Example[]>>;
    let split: unknown;
    let corpus: string[];
    if (p.source === 'synthetic') {
      const sizes = { train: p.train ?? 400, dev: p.dev ?? 200, test: p.test ?? 400 };
      ({ tasks, dialogues, examples } = generateSynthetic({ seed: p.seed, scenes: p.scenes, sizes, trainPerTask: p.train_per_task, tasks: p.tasks }));
      corpus = unlabelledCorpus(dialogues, tasks, examples);
    } else {
      if (!p.path) throw new StageInputError(`source ${p.source} needs "path"`);
      const path = ctx.resolve(p.path);
      if (p.source === 'friends') {
        const names = p.tasks ?? Object.keys(FRIENDS_TASKS);
        const testScenes = readTestScenes(path);
        const raw = names.map((n) => {
          if (!FRIENDS_TASKS[n]) throw new StageInputError(`"${n}" is not a Friends task; they are ${Object.keys(FRIENDS_TASKS).join(', ')}`);
          return FRIENDS_TASKS[n]!.load(path);
        });
        const report = shareSceneSplit(raw, testScenes, String(p.seed));
        split = { test_scenes: testScenes.size, tasks: report };
        for (const [task, r] of Object.entries(report)) {
          ctx.log(`${task}: split by ${r.by}${r.unmapped ? `, ${r.unmapped} examples in no scene left out` : ''}, ${r.repeatsTest} train/dev examples whose dialogue repeats a test turn left out`);
        }
        const loaded = raw.map((l) => {
          const n = l.info.name;
          // Sources share scene ids with different turns (Emory's CSV keeps only utterances with
          // video): each task's dialogues get the task's own namespace.
          const ns = (id: string): string => `${n}/${id}`;
          return {
            info: l.info,
            dialogues: l.dialogues.map((d) => ({ ...d, id: ns(d.id) })),
            splits: Object.fromEntries(Object.entries(l.splits).map(([k, xs]) => [k, xs.map((e) => ({ ...e, dialogue: ns(e.dialogue) }))])) as Record<Split, Example[]>,
          };
        });
        tasks = loaded.map((l) => l.info);
        dialogues = loaded.flatMap((l) => l.dialogues);
        examples = Object.fromEntries(loaded.map((l) => [l.info.name, l.splits]));
      } else {
        const t = loadTlidb(path, p.tasks, String(p.seed));
        tasks = t.tasks;
        dialogues = t.dialogues;
        examples = t.splits;
      }
      corpus = unlabelledCorpus(dialogues, tasks, examples);
      // Few-shot: seeded samples of FETA's sizes (or the sizes given) from the train and dev pools.
      for (const info of tasks) {
        const [fsTrain, fsDev] = FETA_FEW_SHOT[info.name] ?? [Infinity, Infinity];
        const want: Record<Split, number> = {
          train: p.train_per_task?.[info.name] ?? p.train ?? (p.few_shot === false ? Infinity : fsTrain),
          dev: p.dev ?? (p.few_shot === false ? Infinity : fsDev),
          test: p.test ?? Infinity,
        };
        for (const split of ['train', 'dev', 'test'] as Split[]) {
          const pool = examples[info.name]![split];
          if (pool.length > want[split]) examples[info.name]![split] = new Rng(`${p.seed}:few-shot:${info.name}:${split}`).sample(pool, want[split]);
        }
      }
      dialogues = dedupe(dialogues);
    }
    const manifest = writeDataset(ctx.outs.data!, p.source, tasks, dialogues, examples, { ...p, path: p.path ? join(p.path) : undefined, ...(split ? { split } : {}) }, corpus);
    for (const [task, c] of Object.entries(manifest.counts)) ctx.log(`${task}: ${c.train} train, ${c.dev} dev, ${c.test} test`);
    ctx.log(`${manifest.dialogues} dialogues; ${corpus.length} in the unlabelled corpus (pretrain)`);
    return { metrics: { dialogues: manifest.dialogues } };
  },
});

/**
 * The dialogues of every task's training pool before few-shot sampling, each text once (reading
 * comprehension repeats a scene per query): what `pretrain` may read. Test dialogues are never
 * in it, and for Friends no dialogue in it repeats a test turn (scene-split.ts).
 */
function unlabelledCorpus(dialogues: Dialogue[], tasks: TaskInfo[], examples: Record<string, Record<Split, Example[]>>): string[] {
  const byId = new Map(dialogues.map((d) => [d.id, d]));
  const ids = new Set(tasks.flatMap((t) => examples[t.name]!.train.map((e) => e.dialogue)));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const id of [...ids].sort()) {
    const text = JSON.stringify(byId.get(id)?.turns ?? []);
    if (seen.has(text)) continue;
    seen.add(text);
    out.push(id);
  }
  return out;
}

function dedupe(ds: Dialogue[]): Dialogue[] {
  const seen = new Map<string, Dialogue>();
  for (const d of ds) if (!seen.has(d.id)) seen.set(d.id, d);
  return [...seen.values()];
}
