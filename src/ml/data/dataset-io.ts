import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../diagnostics.js';
import { SPLITS, type DatasetManifest, type Dialogue, type Example, type Split, type TaskInfo } from './types.js';

/*
 * A dataset directory:
 *   dataset.json            manifest: tasks (kind, labels, metrics), counts, provenance
 *   dialogues.jsonl         every dialogue once (tasks share scenes, as in FETA)
 *   TASK.SPLIT.jsonl        examples, referring to dialogues by id
 *   corpus.txt              unlabelled dialogues for pretraining (training pools only), one id a line
 * JSON lines: readable with any tool, diffable, one example per line.
 */

export interface Dataset {
  manifest: DatasetManifest;
  dialogues: Map<string, Dialogue>;
  examples(task: string, split: Split): Example[];
  /** The unlabelled corpus's dialogues (none for a dataset written before it existed). */
  corpus(): Dialogue[];
}

export function writeDataset(
  dir: string,
  source: string,
  tasks: TaskInfo[],
  dialogues: Dialogue[],
  examples: Record<string, Record<Split, Example[]>>,
  provenance: Record<string, unknown>,
  corpus: string[] = [],
): DatasetManifest {
  mkdirSync(dir, { recursive: true });
  const used = new Set<string>(corpus);
  writeFileSync(join(dir, 'corpus.txt'), corpus.map((id) => `${id}\n`).join(''));
  for (const t of tasks) for (const s of SPLITS) for (const e of examples[t.name]![s]) used.add(e.dialogue);
  const kept = dialogues.filter((d) => used.has(d.id));
  writeFileSync(join(dir, 'dialogues.jsonl'), kept.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const counts: DatasetManifest['counts'] = {};
  for (const t of tasks) {
    counts[t.name] = { train: 0, dev: 0, test: 0 };
    for (const s of SPLITS) {
      const xs = examples[t.name]![s];
      counts[t.name]![s] = xs.length;
      writeFileSync(join(dir, `${t.name}.${s}.jsonl`), xs.map((e) => JSON.stringify(e)).join('\n') + (xs.length ? '\n' : ''));
    }
  }
  const manifest: DatasetManifest = {
    format: 1,
    source,
    tasks: Object.fromEntries(tasks.map((t) => [t.name, t])),
    counts,
    dialogues: kept.length,
    corpus: corpus.length,
    provenance,
  };
  writeFileSync(join(dir, 'dataset.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

function readJsonLines<T>(path: string): T[] {
  const text = readFileSync(path, 'utf8');
  const out: T[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as T);
    } catch (err) {
      throw new UserError({ message: `${path}:${i + 1}: not valid JSON: ${(err as Error).message}` });
    }
  });
  return out;
}

export function readDataset(dir: string): Dataset {
  let manifest: DatasetManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as DatasetManifest;
  } catch (err) {
    throw new UserError(`${dir} is not a dfwe dataset (no readable dataset.json): ${(err as Error).message}`);
  }
  const dialogues = new Map(readJsonLines<Dialogue>(join(dir, 'dialogues.jsonl')).map((d) => [d.id, d]));
  const cache = new Map<string, Example[]>();
  return {
    manifest,
    dialogues,
    examples(task, split) {
      if (!manifest.tasks[task]) throw new UserError(`dataset ${dir} has no task "${task}"; it has ${Object.keys(manifest.tasks).join(', ')}`);
      const k = `${task}.${split}`;
      if (!cache.has(k)) cache.set(k, readJsonLines<Example>(join(dir, `${k}.jsonl`)));
      return cache.get(k)!;
    },
    corpus() {
      const file = join(dir, 'corpus.txt');
      if (!existsSync(file)) return [];
      return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((id) => {
        const d = dialogues.get(id);
        if (!d) throw new UserError(`${file}: dialogue "${id}" is not in dialogues.jsonl`);
        return d;
      });
    },
  };
}
