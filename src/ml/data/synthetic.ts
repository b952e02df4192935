import { Rng } from '../random.js';
import type { Dialogue, Example, Split, TaskInfo, Turn } from './types.js';

/*
 * A generated multi-task dialogue corpus, deterministic from a seed, with latent structure that
 * some tasks share and others do not, so that transfer between tasks can help or not:
 *   - emotion ↔ sentiment: one latent emotion per utterance (sentiment is its coarse class);
 *   - speaker ↔ personality: characters speak with the words of their Big-Five traits;
 *   - reading ↔ qa: both ask who said which topic word;
 *   - topic: the scene's subjects, independent of emotion and personality.
 * Names and labels mirror the Friends tasks (7 emotions in FETA's order, 5 traits, 6 main
 * characters plus "other").
 */

export const EMOTIONS = ['joyful', 'mad', 'neutral', 'peaceful', 'powerful', 'sad', 'scared'] as const;
const SENTIMENTS = ['negative', 'neutral', 'positive'] as const;
const SENTIMENT_OF: Record<string, number> = { joyful: 2, mad: 0, neutral: 1, peaceful: 2, powerful: 2, sad: 0, scared: 0 };

const CUES: Record<(typeof EMOTIONS)[number], string[]> = {
  joyful: ['great', 'awesome', 'yay', 'wonderful', 'love', 'fun'],
  mad: ['hate', 'stupid', 'ugh', 'furious', 'annoying', 'unbelievable'],
  neutral: ['okay', 'so', 'well', 'anyway', 'right', 'hmm'],
  peaceful: ['calm', 'nice', 'relaxed', 'gentle', 'cozy', 'lovely'],
  powerful: ['confident', 'definitely', 'proud', 'strong', 'absolutely', 'deserve'],
  sad: ['sorry', 'miss', 'lonely', 'cry', 'sad', 'lost'],
  scared: ['afraid', 'scary', 'nervous', 'help', 'worried', 'panic'],
};

const TRAITS = ['agreeable', 'conscientious', 'extroverted', 'open', 'neurotic'] as const;
/** Words a speaker uses when a trait is high [1] or low [0]. */
const TRAIT_WORDS: Record<(typeof TRAITS)[number], [string[], string[]]> = {
  agreeable: [['whatever', 'mine', 'shut', 'leave', 'rude'], ['please', 'thanks', 'sweetie', 'kind', 'share']],
  conscientious: [['later', 'forgot', 'mess', 'lazy', 'oops'], ['plan', 'schedule', 'clean', 'organized', 'careful']],
  extroverted: [['quiet', 'alone', 'home', 'book', 'sleep'], ['party', 'guys', 'everybody', 'dance', 'hey']],
  open: [['usual', 'normal', 'same', 'boring', 'rules'], ['art', 'travel', 'idea', 'imagine', 'weird']],
  neurotic: [['chill', 'easy', 'relax', 'cool', 'breezy'], ['stress', 'freak', 'why', 'overthink', 'doomed']],
};

const MAIN = ['alex', 'blair', 'casey', 'drew', 'emery', 'finley'] as const;
const MAIN_TRAITS: Record<string, number[]> = {
  alex: [1, 0, 1, 1, 0],
  blair: [0, 1, 1, 0, 1],
  casey: [1, 1, 0, 0, 0],
  drew: [0, 0, 0, 1, 1],
  emery: [1, 1, 1, 1, 1],
  finley: [0, 0, 1, 0, 0],
};
const CATCHPHRASE: Record<string, string> = { alex: 'dude', blair: 'totally', casey: 'literally', drew: 'seriously', emery: 'honestly', finley: 'basically' };
const OTHERS = [
  'gunnar', 'janna', 'mikel', 'ursa', 'carlo', 'estelle', 'richie', 'tagg', 'paulo', 'kathy', 'barry', 'mindy', 'gavin', 'emilia',
  'joshua', 'bonnie', 'eddie', 'fran', 'gary', 'heckle', 'isaac', 'julio', 'kip', 'leon', 'marge', 'nina', 'oscar', 'pete', 'quinn', 'russ',
];

const TOPICS: Record<string, string[]> = {
  food: ['pizza', 'coffee', 'sandwich', 'dinner', 'cake', 'soup'],
  work: ['boss', 'office', 'meeting', 'job', 'interview', 'promotion'],
  dating: ['date', 'kiss', 'boyfriend', 'girlfriend', 'wedding', 'breakup'],
  apartment: ['couch', 'rent', 'neighbor', 'kitchen', 'door', 'roommate'],
  money: ['cash', 'bill', 'loan', 'paycheck', 'bank', 'debt'],
  family: ['mom', 'dad', 'sister', 'brother', 'baby', 'grandma'],
  trip: ['vegas', 'london', 'flight', 'hotel', 'beach', 'vacation'],
  music: ['guitar', 'song', 'band', 'concert', 'piano', 'album'],
};
const TOPIC_NAMES = Object.keys(TOPICS);

const FILLER = (
  'i you we the a it is was that this to and but just really know think mean what oh yeah no not do did have go get about ' +
  'with for my your me here there now like can out up all one time thing guess maybe tell look said going want need back good little way ' +
  'when then could would if he she they them his her our ever never still'
).split(' ');

export interface SyntheticOptions {
  seed: number | string;
  /** Scenes to generate; examples of every task are drawn from them (70/15/15 by scene). */
  scenes: number;
  sizes: Record<Split, number>;
  /** Per-task train sizes (few-shot targets). */
  trainPerTask?: Record<string, number>;
  tasks?: string[];
}

export const SYNTHETIC_TASKS: TaskInfo[] = [
  { name: 'emotion', kind: 'single', labels: [...EMOTIONS], metrics: ['f1_micro', 'f1_weighted'], description: 'emotion of the focus utterance (7 classes)' },
  { name: 'sentiment', kind: 'single', labels: [...SENTIMENTS], metrics: ['f1_micro', 'f1_weighted'], description: 'sentiment of the focus utterance (3 classes)' },
  { name: 'speaker', kind: 'single', labels: [...MAIN, 'other'], metrics: ['f1_micro', 'f1_macro'], description: 'who says the focus utterance (speaker hidden)' },
  { name: 'personality', kind: 'multi', labels: [...TRAITS], metrics: ['label_accuracy'], description: 'Big-Five traits of the character named in the item' },
  { name: 'topic', kind: 'multi', labels: TOPIC_NAMES, metrics: ['multilabel_f1_micro'], description: 'what the scene is about (multi-label)' },
  { name: 'reading', kind: 'choice', metrics: ['exact_match'], description: 'which of the candidates said the word in the item' },
  { name: 'qa', kind: 'span', metrics: ['exact_match', 'token_f1'], description: 'the span that answers the question in the item' },
];

interface Character {
  name: string;
  traits: number[];
  main: boolean;
}

interface SceneTruth {
  dialogue: Dialogue;
  emotions: number[];
  speakers: Character[];
  topics: number[];
  /** Topic words per turn, with their token index. */
  topicWords: { turn: number; index: number; word: string; topic: number }[];
}

function characterOf(name: string, seed: string): Character {
  if (name in MAIN_TRAITS) return { name, traits: MAIN_TRAITS[name]!, main: true };
  const r = new Rng(`${seed}:traits:${name}`);
  return { name, traits: TRAITS.map(() => r.int(2)), main: false };
}

/** Emotion preferences that follow from traits: neurotic → scared/sad, extroverted → joyful, … */
function emotionBias(c: Character): number[] {
  const [agr, , ext, , neu] = c.traits as [number, number, number, number, number];
  const w = [1, 1, 1.6, 1, 1, 1, 1];
  w[0]! += ext ? 0.8 : 0; // joyful
  w[4]! += ext ? 0.5 : 0; // powerful
  w[1]! += agr ? 0 : 0.8; // mad
  w[3]! += agr ? 0.8 : 0; // peaceful
  w[5]! += neu ? 0.6 : 0; // sad
  w[6]! += neu ? 0.9 : 0; // scared
  return w;
}

function generateScene(r: Rng, id: string, seed: string): SceneTruth {
  const nMain = 1 + r.int(3);
  const cast: Character[] = r.sample(MAIN, nMain).map((n) => characterOf(n, seed));
  if (r.chance(0.5)) cast.push(characterOf(r.pick(OTHERS), seed));
  const topics = r.sample(TOPIC_NAMES.map((_, i) => i), 1 + (r.chance(0.4) ? 1 : 0)).sort((a, b) => a - b);
  const nTurns = 6 + r.int(7);
  const turns: Turn[] = [];
  const emotions: number[] = [];
  const speakers: Character[] = [];
  const topicWords: SceneTruth['topicWords'] = [];
  let prevEmotion = -1;
  for (let t = 0; t < nTurns; t++) {
    const sp = r.pick(cast);
    // Mood carries over from the previous turn sometimes, so context matters.
    const emotion = prevEmotion >= 0 && r.chance(0.35) ? prevEmotion : r.weighted(emotionBias(sp));
    prevEmotion = emotion;
    const words: string[] = [];
    const emoName = EMOTIONS[emotion]!;
    if (!r.chance(0.15)) {
      // The cue sometimes belongs to another emotion of the same sentiment: emotion is harder
      // than sentiment, and sentiment knowledge helps with it.
      const same = EMOTIONS.filter((e) => SENTIMENT_OF[e] === SENTIMENT_OF[emoName] && e !== emoName);
      const cueFrom = same.length && r.chance(0.25) ? r.pick(same) : emoName;
      words.push(r.pick(CUES[cueFrom]));
    }
    const nTrait = 1 + r.int(2);
    for (let k = 0; k < nTrait; k++) {
      const ti = r.int(TRAITS.length);
      words.push(r.pick(TRAIT_WORDS[TRAITS[ti]!][sp.traits[ti]!]!));
    }
    if (sp.main && r.chance(0.3)) words.push(CATCHPHRASE[sp.name]!);
    let topicWord: { word: string; topic: number } | undefined;
    if (r.chance(0.55)) {
      const topic = r.pick(topics);
      topicWord = { word: r.pick(TOPICS[TOPIC_NAMES[topic]!]!), topic };
      words.push(topicWord.word);
    }
    if (cast.length > 1 && r.chance(0.25)) words.push(r.pick(cast.filter((c) => c !== sp)).name);
    const len = Math.max(words.length + 2, 6 + r.int(7));
    while (words.length < len) words.push(r.pick(FILLER));
    r.shuffle(words);
    if (topicWord) topicWords.push({ turn: t, index: words.indexOf(topicWord.word), word: topicWord.word, topic: topicWord.topic });
    turns.push({ speaker: sp.name, text: words.join(' ') });
    emotions.push(emotion);
    speakers.push(sp);
  }
  return { dialogue: { id, turns }, emotions, speakers, topics, topicWords };
}

type Maker = (r: Rng, s: SceneTruth) => Omit<Example, 'id'> | undefined;

const MAKERS: Record<string, Maker> = {
  emotion: (r, s) => {
    const focus = r.int(s.dialogue.turns.length);
    return { dialogue: s.dialogue.id, focus, label: s.emotions[focus]! };
  },
  sentiment: (r, s) => {
    const focus = r.int(s.dialogue.turns.length);
    return { dialogue: s.dialogue.id, focus, label: SENTIMENT_OF[EMOTIONS[s.emotions[focus]!]!]! };
  },
  speaker: (r, s) => {
    const focus = r.int(s.dialogue.turns.length);
    const sp = s.speakers[focus]!;
    return { dialogue: s.dialogue.id, focus, hideSpeaker: true, label: sp.main ? MAIN.indexOf(sp.name as (typeof MAIN)[number]) : MAIN.length };
  },
  personality: (r, s) => {
    const talkers = [...new Set(s.speakers)].filter((c) => s.speakers.filter((x) => x === c).length >= 2);
    if (talkers.length === 0) return undefined;
    const c = r.pick(talkers);
    return { dialogue: s.dialogue.id, item: c.name, label: c.traits.flatMap((v, i) => (v ? [i] : [])) };
  },
  topic: (_r, s) => ({ dialogue: s.dialogue.id, label: s.topics }),
  reading: (r, s) => {
    const names = [...new Set(s.speakers.map((c) => c.name))];
    // A topic word said by exactly one character, so the answer is unambiguous.
    const unique = s.topicWords.filter((w) => new Set(s.topicWords.filter((x) => x.word === w.word).map((x) => s.speakers[x.turn]!.name)).size === 1);
    if (names.length < 2 || unique.length === 0) return undefined;
    const w = r.pick(unique);
    const candidates = r.shuffle([...names]);
    return { dialogue: s.dialogue.id, item: `who mentioned ${w.word} ?`, candidates, label: candidates.indexOf(s.speakers[w.turn]!.name) };
  },
  qa: (r, s) => {
    if (s.topicWords.length === 0) return undefined;
    const w = r.pick(s.topicWords);
    const who = s.speakers[w.turn]!.name;
    const topicName = TOPIC_NAMES[w.topic]!;
    const gold = s.topicWords.filter((x) => s.speakers[x.turn]!.name === who && x.topic === w.topic).map((x) => ({ turn: x.turn, start: x.index, end: x.index }));
    return { dialogue: s.dialogue.id, item: `what ${topicName} thing did ${who} talk about ?`, label: gold };
  },
};

export function generateSynthetic(opts: SyntheticOptions): { tasks: TaskInfo[]; dialogues: Dialogue[]; examples: Record<string, Record<Split, Example[]>> } {
  const seed = String(opts.seed);
  const tasks = opts.tasks ? SYNTHETIC_TASKS.filter((t) => opts.tasks!.includes(t.name)) : SYNTHETIC_TASKS;
  const sceneRng = new Rng(`${seed}:scenes`);
  const scenes: SceneTruth[] = [];
  for (let i = 0; i < opts.scenes; i++) scenes.push(generateScene(sceneRng, `syn_${String(i).padStart(5, '0')}`, seed));
  // Split by scene, as FETA does: no dialogue is in two splits.
  const order = new Rng(`${seed}:split`).shuffle(scenes.map((_, i) => i));
  const cut1 = Math.floor(order.length * 0.7);
  const cut2 = Math.floor(order.length * 0.85);
  const bySplit: Record<Split, SceneTruth[]> = {
    train: order.slice(0, cut1).map((i) => scenes[i]!),
    dev: order.slice(cut1, cut2).map((i) => scenes[i]!),
    test: order.slice(cut2).map((i) => scenes[i]!),
  };
  const examples: Record<string, Record<Split, Example[]>> = {};
  for (const task of tasks) {
    examples[task.name] = { train: [], dev: [], test: [] };
    for (const split of ['train', 'dev', 'test'] as Split[]) {
      const want = split === 'train' ? opts.trainPerTask?.[task.name] ?? opts.sizes.train : opts.sizes[split];
      const r = new Rng(`${seed}:${task.name}:${split}`);
      const pool = bySplit[split];
      const out: Example[] = [];
      // Each scene gives at most one example per pass; passes repeat until enough are drawn.
      for (let pass = 0; out.length < want && pass < 4; pass++) {
        for (const i of r.shuffle(pool.map((_, k) => k))) {
          if (out.length >= want) break;
          const e = MAKERS[task.name]!(r, pool[i]!);
          if (e) out.push({ id: `${task.name}-${split}-${out.length}`, ...e });
        }
      }
      examples[task.name]![split] = out;
    }
  }
  return { tasks, dialogues: scenes.map((s) => s.dialogue), examples };
}
