import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../random.js';
import { DataError, type TaskData } from './friends.js';
import { SPLITS, type Dialogue, type Example, type Split } from './types.js';

/*
 * One split of the Friends scenes shared by every task, so that no task trains on another's
 * test dialogues (each task's own files put the same scene in different splits: 40% of
 * character-identification test turns were in QA's training dialogues). FETA's test scenes
 * are test for every task that maps to scenes; every other scene goes to train or dev by a
 * seeded draw of its own id, so the split of a scene does not depend on which tasks are
 * loaded. A text check then drops any train or dev example whose dialogue repeats a turn of
 * any test dialogue, which covers what scenes cannot: DialogRE (no scene ids), MELD rows the
 * mapping leaves out, and lines a scene shares with another.
 */

export const TEST_SCENES_FILE = join('feta_splits', 'feta_test_scene_ids.txt');
/** FETA's 70/15 train/dev proportion of the scenes that are not test. */
const DEV_FRACTION = 15 / 85;
/**
 * A turn shorter than this (in words, after normalising) is not evidence of a shared dialogue:
 * "Oh my God." and "What are you doing here?" are said in many scenes.
 */
export const MIN_TURN_WORDS = 6;

export interface SplitReport {
  /** Examples per split after the shared split. */
  train: number;
  dev: number;
  test: number;
  /** Examples that map to no scene (some MELD rows), left out. */
  unmapped: number;
  /** Train and dev examples dropped because their dialogue repeats a test turn. */
  repeatsTest: number;
  /** How the task was split: "scenes" (shared) or "files" (the task's own, DialogRE). */
  by: 'scenes' | 'files';
}

export function readTestScenes(dir: string): Set<string> {
  const file = join(dir, TEST_SCENES_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new DataError(`${file}: cannot be read: FETA's test scenes are needed to split every task by scene (see ../shared/data/friends/README.md, feta_splits/)`);
  }
  const scenes = new Set<string>();
  text.split('\n').forEach((line, i) => {
    const id = line.trim();
    if (id === '') return;
    if (!/^s\d\d_e\d\d_c\d\d$/.test(id)) throw new DataError(`${file}:${i + 1}: "${id.slice(0, 40)}" is not a scene id (sSS_eEE_cCC)`);
    scenes.add(id);
  });
  return scenes;
}

/** Whitespace-separated lowercase words without punctuation; undefined if too short to count. */
export function turnKey(text: string): string | undefined {
  const words = text.toLowerCase().replace(/[^a-z0-9' ]+/g, ' ').replace(/'/g, '').split(/\s+/).filter(Boolean);
  return words.length >= MIN_TURN_WORDS ? words.join(' ') : undefined;
}

export function sceneSplitOf(scene: string, seed: string, testScenes: ReadonlySet<string>): Split {
  if (testScenes.has(scene)) return 'test';
  return new Rng(`friends-scene:${seed}:${scene}`).next() < DEV_FRACTION ? 'dev' : 'train';
}

/**
 * Every task on the shared split (in place), then the text check across all of them.
 * A dialogue in several scenes (a MELD dialogue can span two) is test if any of them is.
 */
export function shareSceneSplit(tasks: TaskData[], testScenes: ReadonlySet<string>, seed: string): Record<string, SplitReport> {
  const report: Record<string, SplitReport> = {};
  for (const t of tasks) {
    const r: SplitReport = { train: 0, dev: 0, test: 0, unmapped: 0, repeatsTest: 0, by: t.scenes ? 'scenes' : 'files' };
    report[t.info.name] = r;
    if (!t.scenes) continue;
    const out: Record<Split, Example[]> = { train: [], dev: [], test: [] };
    for (const e of SPLITS.flatMap((s) => t.splits[s])) {
      const scenes = t.scenes(e);
      if (scenes.length === 0) {
        r.unmapped++;
        continue;
      }
      const splits = scenes.map((sc) => sceneSplitOf(sc, seed, testScenes));
      out[splits.includes('test') ? 'test' : splits[0]!].push(e);
    }
    t.splits = out;
  }
  const testTurns = new Set<string>();
  for (const t of tasks) for (const d of dialoguesOf(t, 'test')) for (const turn of d.turns) {
    const k = turnKey(turn.text);
    if (k) testTurns.add(k);
  }
  for (const t of tasks) {
    const r = report[t.info.name]!;
    const byId = new Map(t.dialogues.map((d) => [d.id, d]));
    const repeats = new Map<string, boolean>();
    const clean = (e: Example): boolean => {
      let hit = repeats.get(e.dialogue);
      if (hit === undefined) {
        hit = (byId.get(e.dialogue)?.turns ?? []).some((turn) => {
          const k = turnKey(turn.text);
          return k !== undefined && testTurns.has(k);
        });
        repeats.set(e.dialogue, hit);
      }
      if (hit) r.repeatsTest++;
      return !hit;
    };
    t.splits.train = t.splits.train.filter(clean);
    t.splits.dev = t.splits.dev.filter(clean);
    for (const s of SPLITS) r[s] = t.splits[s].length;
  }
  return report;
}

function dialoguesOf(t: TaskData, split: Split): Dialogue[] {
  const ids = new Set(t.splits[split].map((e) => e.dialogue));
  return t.dialogues.filter((d) => ids.has(d.id));
}
