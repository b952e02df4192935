import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { UserError } from '../../diagnostics.js';
import { jsonErrorOffset } from '../../util/json-error.js';
import type { Dialogue, Example, Span, Split, TaskInfo } from './types.js';
import { pushAll } from '../../util/arrays.js';

/*
 * Loaders for the FETA-Friends tasks in their original public formats (see
 * shared/data/friends/README.md): Emory emotion (CSV + JSON), MELD (CSV), character
 * identification, reading comprehension, FriendsQA (JSON), personality (CSV with HTML) and
 * DialogRE (JSON). Each loader gives the files' own splits and, where the task can be mapped to
 * Character Mining scenes, the scenes of each example; scene-split.ts then puts every mapped
 * task on one shared split by scene. A malformed file is an error that names the file and the
 * place in it.
 */

export class DataError extends UserError {}

function fail(file: string, where: string, what: string): never {
  throw new DataError(`${file}${where ? `: ${where}` : ''}: ${what}`);
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    fail(file, '', 'cannot be read (is the data path right?)');
  }
}

export function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text);
  } catch (err) {
    const at = jsonErrorOffset(text);
    if (at >= 0) {
      const before = text.slice(0, at);
      const line = before.split('\n').length;
      const col = at - before.lastIndexOf('\n');
      throw new DataError(`${file}:${line}:${col}: not valid JSON: ${(err as Error).message.split('\n')[0]}`);
    }
    fail(file, '', `not valid JSON: ${(err as Error).message.split('\n')[0]}`);
  }
}

export function readCsv(file: string): Record<string, string>[] {
  const text = readText(file);
  try {
    return parseCsv(text, { columns: true, bom: true, skip_empty_lines: true }) as Record<string, string>[];
  } catch (err) {
    const e = err as Error & { lines?: number };
    throw new DataError(`${file}${e.lines ? `:${e.lines}` : ''}: not valid CSV: ${e.message}`);
  }
}

function need<T>(file: string, where: string, obj: unknown, key: string, check: (v: unknown) => boolean, what: string): T {
  const v = obj && typeof obj === 'object' ? (obj as Record<string, unknown>)[key] : undefined;
  if (!check(v)) fail(file, where, `"${key}" should be ${what}, found ${v === undefined ? 'nothing' : JSON.stringify(v).slice(0, 60)}`);
  return v as T;
}
const isStr = (v: unknown): boolean => typeof v === 'string';
const isArr = (v: unknown): boolean => Array.isArray(v);
const isInt = (v: unknown): boolean => Number.isInteger(v);

export interface TaskData {
  info: TaskInfo;
  dialogues: Dialogue[];
  /** As the files split them (a task with one file has it all in train). */
  splits: Record<Split, Example[]>;
  /**
   * The Character Mining scenes (sSS_eEE_cCC) an example's dialogue comes from: none when it
   * cannot be mapped; absent for a task that cannot be mapped at all (DialogRE).
   */
  scenes?: (e: Example) => readonly string[];
}

const pad = (n: string | number, w: number): string => String(n).padStart(w, '0');

/** The seven FETA-Friends tasks, their files, labels and metrics. */
export const FRIENDS_TASKS: Record<string, { info: TaskInfo; load: (dir: string) => TaskData }> = {};

function register(info: TaskInfo, load: (dir: string, info: TaskInfo) => TaskData): void {
  FRIENDS_TASKS[info.name] = { info, load: (dir) => load(dir, info) };
}

// ---- 1. Emory emotion recognition -----------------------------------------------------------
const EMORY = ['joyful', 'mad', 'neutral', 'peaceful', 'powerful', 'sad', 'scared'];

/** The Character Mining layout (seasons → episodes → scenes → utterances), scene by scene. */
function* characterMiningScenes(file: string): Generator<{ where: string; id: string; utts: Record<string, unknown>[] }> {
  const raw = readJson(file);
  const seasons = Array.isArray(raw) ? raw : [raw];
  for (const [si, season] of seasons.entries()) {
    for (const [ei, ep] of need<unknown[]>(file, `[${si}]`, season, 'episodes', isArr, 'a list').entries()) {
      for (const [ci, sc] of need<unknown[]>(file, `episodes[${ei}]`, ep, 'scenes', isArr, 'a list').entries()) {
        const where = `episodes[${ei}].scenes[${ci}]`;
        yield { where, id: need<string>(file, where, sc, 'scene_id', isStr, 'a string'), utts: need<Record<string, unknown>[]>(file, where, sc, 'utterances', isArr, 'a list') };
      }
    }
  }
}

function emoryJson(file: string, task: string, labels: string[]): { dialogues: Dialogue[]; examples: Example[] } {
  const dialogues: Dialogue[] = [];
  const examples: Example[] = [];
  for (const { where, id, utts } of characterMiningScenes(file)) {
    const turns = utts.map((u, ui) => ({
      speaker: need<string[]>(file, `${where}.utterances[${ui}]`, u, 'speakers', isArr, 'a list').join(' '),
      text: need<string>(file, `${where}.utterances[${ui}]`, u, 'transcript', isStr, 'a string'),
    }));
    dialogues.push({ id, turns });
    utts.forEach((u, ui) => {
      const label = labels.indexOf(String(u.emotion ?? '').toLowerCase());
      if (label < 0) fail(file, `${where}.utterances[${ui}]`, `unknown emotion ${JSON.stringify(u.emotion)}`);
      examples.push({ id: `${task}-${String(u.utterance_id ?? `${id}_${ui}`)}`, dialogue: id, focus: ui, label });
    });
  }
  return { dialogues, examples };
}

/**
 * An utterance-per-row emotion CSV (EmoryNLP's multimodal release, MELD): rows grouped into
 * dialogues in utterance order, one example per row.
 */
function emotionCsv(
  file: string,
  columns: string[],
  labels: string[],
  rowOf: (r: Record<string, string>) => { dialogue: string; u: number; speaker: string; scenes?: readonly string[] },
  exampleId: (dialogue: string, u: number) => string,
): { dialogues: Dialogue[]; examples: Example[]; scenes: Map<string, Set<string>> } {
  const byDialogue = new Map<string, { u: number; speaker: string; text: string; emotion: string; line: number }[]>();
  const scenes = new Map<string, Set<string>>();
  readCsv(file).forEach((r, i) => {
    for (const k of ['Utterance', 'Emotion', ...columns]) if (r[k] === undefined) fail(file, `row ${i + 2}`, `missing column "${k}"`);
    const row = rowOf(r);
    const list = byDialogue.get(row.dialogue) ?? [];
    list.push({ u: row.u, speaker: row.speaker, text: r.Utterance!, emotion: r.Emotion!.toLowerCase(), line: i + 2 });
    byDialogue.set(row.dialogue, list);
    const seen = scenes.get(row.dialogue) ?? scenes.set(row.dialogue, new Set()).get(row.dialogue)!;
    for (const sc of row.scenes ?? []) seen.add(sc);
  });
  const dialogues: Dialogue[] = [];
  const examples: Example[] = [];
  for (const [id, list] of byDialogue) {
    list.sort((x, y) => x.u - y.u);
    dialogues.push({ id, turns: list.map((x) => ({ speaker: x.speaker, text: x.text })) });
    list.forEach((x, ti) => {
      const label = labels.indexOf(x.emotion);
      if (label < 0) fail(file, `row ${x.line}`, `unknown emotion "${x.emotion}"`);
      examples.push({ id: exampleId(id, x.u), dialogue: id, focus: ti, label });
    });
  }
  return { dialogues, examples, scenes };
}

/** The multimodal EmoryNLP CSV: scenes from season, episode and scene numbers. */
function emoryCsv(file: string, task: string): { dialogues: Dialogue[]; examples: Example[] } {
  return emotionCsv(
    file,
    ['Speaker', 'Scene_ID', 'Utterance_ID', 'Season', 'Episode'],
    EMORY,
    (r) => ({
      dialogue: `s${pad(r.Season!, 2)}_e${pad(r.Episode!, 2)}_c${pad(r.Scene_ID!, 2)}`,
      u: Number(r.Utterance_ID),
      // Speaker is a Python list literal: ['Monica Geller'] (names may hold apostrophes).
      speaker: [...r.Speaker!.matchAll(/'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? m[2] ?? '').join(' '),
    }),
    (id, u) => `${task}-${id}_u${pad(u, 3)}`,
  );
}

register(
  { name: 'emory_emotion_recognition', kind: 'single', labels: EMORY, metrics: ['f1_micro', 'f1_weighted'], description: 'EmoryNLP emotion of an utterance (7 classes)' },
  (dir, info) => {
    const d = join(dir, 'emory_emotion_recognition');
    const train = emoryCsv(join(d, 'emorynlp_train_final.csv'), info.name);
    const dev = emoryJson(join(d, 'emotion-detection-dev.json'), info.name, EMORY);
    const test = emoryJson(join(d, 'emotion-detection-tst.json'), info.name, EMORY);
    // Dialogue ids are scene ids.
    return { info, dialogues: [...train.dialogues, ...dev.dialogues, ...test.dialogues], splits: { train: train.examples, dev: dev.examples, test: test.examples }, scenes: (e) => [e.dialogue] };
  },
);

// ---- 2. MELD emotion recognition --------------------------------------------------------------
const MELD = ['anger', 'disgust', 'fear', 'joy', 'neutral', 'sadness', 'surprise'];
register(
  { name: 'MELD_emotion_recognition', kind: 'single', labels: MELD, metrics: ['f1_micro', 'f1_weighted'], description: 'MELD emotion of an utterance (7 classes)' },
  (dir, info) => {
    const mapping = meldMapping(join(dir, 'meld_emotion_recognition', 'meld_manual_mapping.json'));
    const dialogues: Dialogue[] = [];
    const splits = { train: [], dev: [], test: [] } as Record<Split, Example[]>;
    const scenes = new Map<string, readonly string[]>();
    for (const [split, name] of [['train', 'train_sent_emo.csv'], ['dev', 'dev_sent_emo.csv'], ['test', 'test_sent_emo.csv']] as const) {
      const r = emotionCsv(
        join(dir, 'meld_emotion_recognition', name),
        ['Sr No.', 'Speaker', 'Dialogue_ID', 'Utterance_ID'],
        MELD,
        (row) => ({ dialogue: `meld-${split}-${row.Dialogue_ID}`, u: Number(row.Utterance_ID), speaker: row.Speaker!, scenes: mapping.get(`${split}-${row['Sr No.']}`) }),
        (id, u) => `${info.name}-${id}-${u}`,
      );
      pushAll(dialogues, r.dialogues);
      splits[split] = r.examples;
      for (const [d, sc] of r.scenes) scenes.set(d, [...sc].sort());
    }
    // A MELD dialogue is in every scene one of its rows maps to (TLiDB's manual mapping).
    return { info, dialogues, splits, scenes: (e) => scenes.get(e.dialogue) ?? [] };
  },
);

/** TLiDB's MELD mapping: "<split>-<Sr No.>" → Character Mining utterance ids, of which the scene part is reliable. */
function meldMapping(file: string): Map<string, string[]> {
  const raw = readJson(file);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail(file, '', 'should map "<split>-<Sr No.>" to lists of utterance ids');
  const out = new Map<string, string[]>();
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!Array.isArray(v) || v.some((u) => typeof u !== 'string')) fail(file, JSON.stringify(k), 'should be a list of utterance ids');
    out.set(k, [...new Set((v as string[]).map((u) => u.slice(0, u.lastIndexOf('_u') >= 0 ? u.lastIndexOf('_u') : u.length)))]);
  }
  return out;
}

// ---- 3. Character identification ------------------------------------------------------------
const CHARACTERS = ['chandler', 'joey', 'monica', 'phoebe', 'rachel', 'ross', 'other'];
const MAIN_CAST: Record<string, string> = {
  'Chandler Bing': 'chandler', 'Joey Tribbiani': 'joey', 'Monica Geller': 'monica', 'Phoebe Buffay': 'phoebe', 'Rachel Green': 'rachel', 'Ross Geller': 'ross',
};

function charIdFile(file: string, task: string): { dialogues: Dialogue[]; examples: Example[] } {
  const dialogues: Dialogue[] = [];
  const examples: Example[] = [];
  for (const { where, id, utts } of characterMiningScenes(file)) {
    dialogues.push({ id, turns: utts.map((u) => ({ speaker: ((u.speakers as string[] | undefined) ?? []).join(' '), text: String(u.transcript ?? '') })) });
    utts.forEach((u, ui) => {
      const w = `${where}.utterances[${ui}]`;
      const tokens = need<string[][]>(file, w, u, 'tokens', isArr, 'a list of sentences');
      const mentions = (u.character_entities as unknown[][] | undefined) ?? [];
      mentions.forEach((sentence, si) => {
        (sentence as unknown[][]).forEach((m, mi) => {
          if (!Array.isArray(m) || !isInt(m[0]) || !isInt(m[1]) || typeof m[2] !== 'string') fail(file, `${w}.character_entities[${si}][${mi}]`, 'a mention is [begin, end, entity, …]');
          const text = (tokens[si] ?? []).slice(m[0] as number, m[1] as number).join(' ');
          const label = CHARACTERS.indexOf(MAIN_CAST[m[2] as string] ?? 'other');
          examples.push({ id: `${task}-${String(u.utterance_id)}-${si}-${mi}`, dialogue: id, focus: ui, item: text, label });
        });
      });
    });
  }
  return { dialogues, examples };
}

register(
  { name: 'character_identification', kind: 'single', labels: CHARACTERS, metrics: ['f1_micro', 'f1_macro'], description: 'which character a mention refers to (6 main + other)' },
  (dir, info) => {
    const d = join(dir, 'character_identification');
    const dev = charIdFile(join(d, 'character-identification-dev.json'), info.name);
    const test = charIdFile(join(d, 'character-identification-tst.json'), info.name);
    return { info, dialogues: [...dev.dialogues, ...test.dialogues], splits: { train: [], dev: dev.examples, test: test.examples }, scenes: (e) => [e.dialogue] };
  },
);

// ---- 4. Reading comprehension -----------------------------------------------------------------
function rcFile(file: string, task: string, split: string): { dialogues: Dialogue[]; examples: Example[]; scene: Map<string, string> } {
  const raw = readJson(file);
  if (!Array.isArray(raw)) fail(file, '', 'should be a list of queries');
  const dialogues: Dialogue[] = [];
  const examples: Example[] = [];
  const scene = new Map<string, string>();
  raw.forEach((q, i) => {
    const where = `[${i}]`;
    const sceneId = need<string>(file, where, q, 'scene_id', isStr, 'a string');
    const query = need<string>(file, where, q, 'query', isStr, 'a string');
    const answer = need<string>(file, where, q, 'answer', isStr, 'an entity id');
    const utts = need<{ speakers?: string; tokens?: string }[]>(file, where, q, 'utterances', isArr, 'a list');
    const id = `rc-${split}-${i}`;
    const turns = utts.map((u) => ({ speaker: u.speakers ?? '', text: u.tokens ?? '' }));
    const entities = new Set<string>();
    for (const t of turns) {
      if (t.speaker) entities.add(t.speaker);
      for (const m of t.text.matchAll(/@ent\d+/g)) entities.add(m[0]);
    }
    const candidates = [...entities].sort();
    const label = candidates.indexOf(answer);
    if (label < 0) fail(file, where, `answer ${answer} does not appear in the dialogue`);
    dialogues.push({ id, turns });
    scene.set(id, sceneId);
    examples.push({ id: `${task}-${split}-${i}`, dialogue: id, item: query, candidates, label });
  });
  return { dialogues, examples, scene };
}

register(
  { name: 'reading_comprehension', kind: 'choice', metrics: ['exact_match'], description: 'which entity fills @placeholder in a plot sentence' },
  (dir, info) => {
    const d = join(dir, 'reading_comprehension');
    const dev = rcFile(join(d, 'reading-comprehension-dev.json'), info.name, 'dev');
    const test = rcFile(join(d, 'reading-comprehension-tst.json'), info.name, 'test');
    const scene = new Map([...dev.scene, ...test.scene]);
    return { info, dialogues: [...dev.dialogues, ...test.dialogues], splits: { train: [], dev: dev.examples, test: test.examples }, scenes: (e) => [scene.get(e.dialogue)!] };
  },
);

// ---- 5. FriendsQA -----------------------------------------------------------------------------
function qaFile(file: string, task: string): { dialogues: Dialogue[]; examples: Example[] } {
  const raw = readJson(file);
  const data = need<Record<string, unknown>[]>(file, '', raw, 'data', isArr, 'a list');
  const dialogues: Dialogue[] = [];
  const examples: Example[] = [];
  data.forEach((doc, di) => {
    const title = need<string>(file, `data[${di}]`, doc, 'title', isStr, 'a scene id');
    need<Record<string, unknown>[]>(file, `data[${di}]`, doc, 'paragraphs', isArr, 'a list').forEach((par, pi) => {
      const where = `data[${di}].paragraphs[${pi}]`;
      // The key is literally "utterances:" (with a colon) in the public files.
      const utts = (par['utterances:'] ?? par.utterances) as { uid: number; speakers: string[]; utterance: string }[] | undefined;
      if (!Array.isArray(utts)) fail(file, where, 'missing "utterances:"');
      const id = `${title}#${pi}`;
      const turnOf = new Map(utts.map((u, i) => [u.uid, i]));
      dialogues.push({ id, turns: utts.map((u) => ({ speaker: (u.speakers ?? []).join(' '), text: u.utterance ?? '' })) });
      need<Record<string, unknown>[]>(file, where, par, 'qas', isArr, 'a list').forEach((qa, qi) => {
        const answers = need<Record<string, unknown>[]>(file, `${where}.qas[${qi}]`, qa, 'answers', isArr, 'a list');
        // Speaker answers (is_speaker) name a speaker, not a span of the text: they are left out.
        const spans: Span[] = answers
          .filter((a) => !a.is_speaker && turnOf.has(a.utterance_id as number))
          .map((a) => ({ turn: turnOf.get(a.utterance_id as number)!, start: a.inner_start as number, end: a.inner_end as number }));
        if (spans.length) examples.push({ id: `${task}-${String(qa.id ?? `${id}-${qi}`)}`, dialogue: id, item: String(qa.question ?? ''), label: spans });
      });
    });
  });
  return { dialogues, examples };
}

register(
  { name: 'question_answering', kind: 'span', metrics: ['exact_match', 'token_f1'], description: 'FriendsQA: the span of the dialogue that answers a question' },
  (dir, info) => {
    const d = join(dir, 'question_answering');
    const dev = qaFile(join(d, 'friendsqa_dev.json'), info.name);
    const test = qaFile(join(d, 'friendsqa_tst.json'), info.name);
    return { info, dialogues: [...dev.dialogues, ...test.dialogues], splits: { train: [], dev: dev.examples, test: test.examples }, scenes: (e) => [e.dialogue.split('#')[0]!] };
  },
);

// ---- 6. Personality detection -----------------------------------------------------------------
const TRAITS = ['aggreeable', 'conscientious', 'extroverted', 'open', 'neurotic'];
const TRAIT_COLUMNS = ['cAGR', 'cCON', 'cEXT', 'cOPN', 'cNEU'];

/** FriendsPersona text: "<b>sSS_eEE_cCC(k) for NAME</b><br><br><b>Speaker</b>: line<br><br>…" */
export function personaTurns(html: string): { speaker: string; text: string }[] {
  const strip = (s: string): string => s.replace(/<[^>]+>/g, '').replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").trim();
  return html
    .split(/<br\s*\/?>\s*<br\s*\/?>/i)
    .slice(1)
    .map((seg) => {
      const m = /^\s*<b>(.*?)<\/b>\s*:\s*([\s\S]*)$/i.exec(seg);
      return m ? { speaker: strip(m[1]!), text: strip(m[2]!) } : { speaker: '', text: strip(seg) };
    })
    .filter((t) => t.text !== '');
}

register(
  { name: 'personality_detection', kind: 'multi', labels: TRAITS, metrics: ['label_accuracy'], description: 'Big-Five traits of the focus character (accuracy over trait instances)' },
  (dir, info) => {
    const file = join(dir, 'personality_detection', 'friends-personality.csv');
    const dialogues: Dialogue[] = [];
    const examples: Example[] = [];
    const scene = new Map<string, string>();
    readCsv(file).forEach((r, i) => {
      for (const k of ['scene_id', 'text', 'character', ...TRAIT_COLUMNS]) if (r[k] === undefined) fail(file, `row ${i + 2}`, `missing column "${k}"`);
      const id = `pd-${i}`;
      dialogues.push({ id, turns: personaTurns(r.text!) });
      scene.set(id, `s${r.scene_id}`); // scene ids here lack the leading "s"
      examples.push({ id: `${info.name}-${i}`, dialogue: id, item: r.character!, label: TRAIT_COLUMNS.flatMap((c, k) => (r[c] === '1' ? [k] : [])) });
    });
    return { info, dialogues, splits: { train: examples, dev: [], test: [] }, scenes: (e) => [scene.get(e.dialogue)!] };
  },
);

// ---- 7. Relation extraction (DialogRE v2) -------------------------------------------------------
const RELATIONS = [
  'per:positive_impression', 'per:negative_impression', 'per:acquaintance', 'per:alumni', 'per:boss', 'per:subordinate', 'per:client', 'per:dates',
  'per:friends', 'per:girl/boyfriend', 'per:neighbor', 'per:roommate', 'per:children', 'per:other_family', 'per:parents', 'per:siblings', 'per:spouse',
  'per:place_of_residence', 'per:place_of_birth', 'per:visited_place', 'per:origin', 'per:employee_or_member_of', 'per:schools_attended', 'per:works',
  'per:age', 'per:date_of_birth', 'per:major', 'per:place_of_work', 'per:title', 'per:alternate_names', 'per:pet', 'gpe:residents_of_place',
  'gpe:births_in_place', 'gpe:visitors_of_place', 'org:employees_or_members', 'org:students', 'unanswerable',
];
register(
  // As FETA scores it: classes 0–34 without place_of_birth (18), alternate_names (29), births_in_place (33).
  { name: 'relation_extraction', kind: 'multi', labels: RELATIONS, unscored: [18, 29, 33, 35, 36], atLeastOne: true, metrics: ['multilabel_f1_micro'], description: 'DialogRE: relations between two arguments (multi-label)' },
  (dir, info) => {
    const dialogues: Dialogue[] = [];
    const splits = { train: [], dev: [], test: [] } as Record<Split, Example[]>;
    for (const split of ['train', 'dev', 'test'] as const) {
      const file = join(dir, 'relation_extraction', 'data_v2_en', `${split}.json`);
      const raw = readJson(file);
      if (!Array.isArray(raw)) fail(file, '', 'should be a list of [turns, pairs]');
      raw.forEach((entry, i) => {
        if (!Array.isArray(entry) || !Array.isArray(entry[0]) || !Array.isArray(entry[1])) fail(file, `[${i}]`, 'an entry is [turns, pairs]');
        const id = `re-${split}-${i}`;
        dialogues.push({
          id,
          turns: (entry[0] as string[]).map((t) => {
            const m = /^([^:]{1,40}):\s*([\s\S]*)$/.exec(t);
            return m ? { speaker: m[1]!, text: m[2]! } : { speaker: '', text: t };
          }),
        });
        (entry[1] as Record<string, unknown>[]).forEach((pair, pi) => {
          const where = `[${i}][1][${pi}]`;
          const x = need<string>(file, where, pair, 'x', isStr, 'a string');
          const y = need<string>(file, where, pair, 'y', isStr, 'a string');
          const rid = need<number[]>(file, where, pair, 'rid', isArr, 'a list of relation ids');
          splits[split].push({ id: `${info.name}-${split}-${i}-${pi}`, dialogue: id, item: `${x} ; ${y}`, label: [...new Set(rid.map((r) => r - 1))].sort((a, b) => a - b) });
        });
      });
    }
    return { info, dialogues, splits };
  },
);

/** FETA's few-shot (10%) train/dev sizes, from TLiDB's scripts; MELD's is 10% of its train set. */
export const FETA_FEW_SHOT: Record<string, [number, number]> = {
  emory_emotion_recognition: [863, 207],
  reading_comprehension: [950, 208],
  character_identification: [1692, 387],
  question_answering: [835, 197],
  personality_detection: [55, 15],
  relation_extraction: [530, 130],
  MELD_emotion_recognition: [999, 111],
};

export function friendsAvailable(dir: string): boolean {
  return existsSync(join(dir, 'emory_emotion_recognition'));
}
