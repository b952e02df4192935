import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Rng } from '../random.js';
import { DataError, FRIENDS_TASKS, readJson } from './friends.js';
import type { Dialogue, Example, Span, Split, TaskInfo } from './types.js';

/*
 * TLiDB's unified Friends JSON (TLiDB_Friends.json): {metadata, data: [{dialogue_id,
 * dialogue_metadata: {TASK: …}, dialogue: [{turn_id, speakers, utterance, …}], TASK: […]}]}.
 * Utterance-level labels sit on turns; the other tasks list their instances on the dialogue.
 * Splits come from TTiDB_{train,dev,test}_ids.txt beside the file (one dialogue id per line)
 * when present, else dialogues are split 70/15/15 by id (seeded).
 */

/** TLiDB task name → the task as dfwe names it (FETA's names). */
const NAMES: Record<string, string> = {
  emotion_recognition: 'emory_emotion_recognition',
  MELD_emotion_recognition: 'MELD_emotion_recognition',
  character_identification: 'character_identification',
  reading_comprehension: 'reading_comprehension',
  question_answering: 'question_answering',
  personality_detection: 'personality_detection',
  relation_extraction: 'relation_extraction',
};

interface Turn {
  speakers?: string[];
  utterance?: string;
  [task: string]: unknown;
}

interface Datum {
  dialogue_id: string;
  dialogue_metadata?: Record<string, unknown>;
  dialogue: Turn[];
  [task: string]: unknown;
}

function words(text: string): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let p = 0;
  for (const w of text.split(' ')) {
    out.push({ start: p, end: p + w.length });
    p += w.length + 1;
  }
  return out;
}

/** A character span [start, start+len) of a turn as word indices (both inclusive). */
function charSpanToWords(text: string, start: number, len: number): [number, number] | undefined {
  const ws = words(text);
  const hit = ws.map((w, i) => (w.end > start && w.start < start + len ? i : -1)).filter((i) => i >= 0);
  return hit.length ? [hit[0]!, hit[hit.length - 1]!] : undefined;
}

export function loadTlidb(file: string, tasks: string[] | undefined, seed: string): { tasks: TaskInfo[]; dialogues: Dialogue[]; splits: Record<string, Record<Split, Example[]>> } {
  const raw = readJson(file) as { data?: Datum[] };
  if (!Array.isArray(raw.data)) throw new DataError(`${file}: "data" should be the list of dialogues`);
  const wanted = new Set(tasks ?? Object.values(NAMES));
  const dialogues: Dialogue[] = [];
  const examples = new Map<string, Example[]>();
  const add = (task: string, e: Example): void => void (examples.get(task) ?? examples.set(task, []).get(task)!).push(e);
  const speakerOf = (t: Turn): string => (t.speakers ?? []).join(' ');

  raw.data.forEach((d, di) => {
    const where = `data[${di}]`;
    if (typeof d.dialogue_id !== 'string' || !Array.isArray(d.dialogue)) throw new DataError(`${file}: ${where}: a dialogue has "dialogue_id" and "dialogue"`);
    const id = d.dialogue_id;
    const turns = d.dialogue.map((t) => ({ speaker: speakerOf(t), text: String(t.utterance ?? '') }));
    dialogues.push({ id, turns });
    const sub = (task: string, k: number, idx: number[]): string => {
      const sid = `${id}#${task}#${k}`;
      dialogues.push({ id: sid, turns: idx.map((i) => turns[i]!).filter(Boolean) });
      return sid;
    };
    for (const [tl, name] of Object.entries(NAMES)) {
      if (!wanted.has(name)) continue;
      const info = FRIENDS_TASKS[name]!.info;
      if (tl === 'emotion_recognition' || tl === 'MELD_emotion_recognition') {
        d.dialogue.forEach((t, ti) => {
          if (t[tl] === undefined) return;
          const label = info.labels!.indexOf(String(t[tl]).toLowerCase());
          if (label < 0) throw new DataError(`${file}: ${where}.dialogue[${ti}]: unknown ${tl} label ${JSON.stringify(t[tl])}`);
          add(name, { id: `${name}-${id}-${ti}`, dialogue: id, focus: ti, label });
        });
      } else if (tl === 'character_identification') {
        d.dialogue.forEach((t, ti) => {
          ((t[tl] as { entity_reference: string; normalized_entity: string }[] | undefined) ?? []).forEach((m, mi) => {
            const first = String(m.normalized_entity ?? '').split(/[\s_]/)[0]!.toLowerCase();
            const label = info.labels!.indexOf(info.labels!.includes(first) ? first : 'other');
            add(name, { id: `${name}-${id}-${ti}-${mi}`, dialogue: id, focus: ti, item: m.entity_reference, label });
          });
        });
      } else if (tl === 'reading_comprehension') {
        const entities = ((d.dialogue_metadata?.[tl] as { scene_entities?: string[] } | undefined)?.scene_entities ?? []).slice();
        ((d[tl] as { query: string; answer: string }[] | undefined) ?? []).forEach((q, qi) => {
          const label = entities.indexOf(q.answer);
          if (label < 0) throw new DataError(`${file}: ${where}.${tl}[${qi}]: answer ${JSON.stringify(q.answer)} is not among scene_entities`);
          add(name, { id: `${name}-${id}-${qi}`, dialogue: id, item: q.query, candidates: entities, label });
        });
      } else if (tl === 'question_answering') {
        ((d[tl] as { qas: { question: string; answers: { text: string; answer_start: number; answer_utterance_id: number; is_speaker?: boolean }[] }[] }[] | undefined) ?? []).forEach((group, gi) =>
          group.qas.forEach((qa, qi) => {
            const spans: Span[] = [];
            for (const a of qa.answers) {
              const turn = turns[a.answer_utterance_id];
              if (a.is_speaker || !turn) continue;
              const w = charSpanToWords(turn.text, a.answer_start, a.text.length);
              if (w) spans.push({ turn: a.answer_utterance_id, start: w[0], end: w[1] });
            }
            if (spans.length) add(name, { id: `${name}-${id}-${gi}-${qi}`, dialogue: id, item: qa.question, label: spans });
          }),
        );
      } else if (tl === 'personality_detection') {
        ((d[tl] as { turns: number[]; focus_speaker: string; personality_characteristics: Record<string, number | string> }[] | undefined) ?? []).forEach((s, si) => {
          const label = info.labels!.flatMap((trait, k) => (String(s.personality_characteristics?.[trait]) === '1' ? [k] : []));
          add(name, { id: `${name}-${id}-${si}`, dialogue: sub(name, si, s.turns), item: s.focus_speaker, label });
        });
      } else if (tl === 'relation_extraction') {
        ((d[tl] as { turns: number[]; relation_triples: { head: string; tail: string; relations: string[] }[] }[] | undefined) ?? []).forEach((s, si) => {
          const sid = sub(name, si, s.turns);
          s.relation_triples.forEach((tr, ti) => {
            const label = tr.relations.map((r) => info.labels!.indexOf(r));
            if (label.some((l) => l < 0)) throw new DataError(`${file}: ${where}.${tl}[${si}]: unknown relation in ${JSON.stringify(tr.relations)}`);
            add(name, { id: `${name}-${id}-${si}-${ti}`, dialogue: sid, item: `${tr.head} ; ${tr.tail}`, label: [...new Set(label)].sort((a, b) => a - b) });
          });
        });
      }
    }
  });

  const splitOf = splitAssignment(file, raw.data.map((d) => d.dialogue_id), seed);
  const splits: Record<string, Record<Split, Example[]>> = {};
  const infos: TaskInfo[] = [];
  for (const [name, list] of examples) {
    infos.push(FRIENDS_TASKS[name]!.info);
    splits[name] = { train: [], dev: [], test: [] };
    for (const e of list) {
      const split = splitOf.get(e.dialogue.split('#')[0]!);
      if (split) splits[name]![split].push(e);
    }
  }
  return { tasks: infos, dialogues, splits };
}

function splitAssignment(file: string, ids: string[], seed: string): Map<string, Split> {
  const out = new Map<string, Split>();
  const dir = dirname(file);
  const files = (['train', 'dev', 'test'] as Split[]).map((s) => [s, join(dir, `TTiDB_${s}_ids.txt`)] as const);
  if (files.every(([, f]) => existsSync(f))) {
    for (const [split, f] of files) for (const line of readFileSync(f, 'utf8').split('\n')) if (line.trim()) out.set(line.trim(), split);
    return out;
  }
  const order = new Rng(`tlidb-split:${seed}`).shuffle([...ids].sort());
  order.forEach((id, i) => out.set(id, i < order.length * 0.7 ? 'train' : i < order.length * 0.85 ? 'dev' : 'test'));
  return out;
}
