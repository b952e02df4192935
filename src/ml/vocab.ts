import type { Dataset } from './data/dataset-io.js';
import type { Dialogue } from './data/types.js';

/** Lower-cased words, numbers and single punctuation marks. */
export function tokenize(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9@_#'-]+|[^\sa-z0-9@_#'-]/g) ?? [];
}

export const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[TURN]', '[HIDDEN]'] as const;
export const PAD = 0;
export const UNK = 1;
export const CLS = 2;
export const SEP = 3;
export const TURN = 4;
export const HIDDEN = 5;

export interface Vocab {
  tokens: string[];
  index: Map<string, number>;
}

export function vocabFromTokens(tokens: string[]): Vocab {
  return { tokens, index: new Map(tokens.map((t, i) => [t, i])) };
}

export function id(v: Vocab, token: string): number {
  return v.index.get(token) ?? UNK;
}

/**
 * A vocabulary from the training text of every task: speakers always (they are what several
 * tasks ask about), then words by frequency (ties alphabetical, so it is deterministic).
 */
export function buildVocab(ds: Dataset, maxSize: number, minCount: number): Vocab {
  const counts = new Map<string, number>();
  const speakers = new Set<string>();
  const seen = new Set<string>();
  const add = (d: Dialogue): void => {
    if (seen.has(d.id)) return;
    seen.add(d.id);
    for (const t of d.turns) {
      // A speaker is one token ("joey_tribbiani"), as encode() writes it, and its words are words.
      const words = tokenize(t.speaker);
      if (words.length) speakers.add(words.join('_'));
      for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
      for (const w of tokenize(t.text)) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  };
  for (const task of Object.keys(ds.manifest.tasks)) {
    for (const e of ds.examples(task, 'train')) {
      add(ds.dialogues.get(e.dialogue)!);
      for (const w of [...tokenize(e.item ?? ''), ...(e.candidates ?? []).flatMap(tokenize)]) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  const tokens: string[] = [...SPECIALS, ...[...speakers].sort()];
  const taken = new Set(tokens);
  const words = [...counts].filter(([w, c]) => c >= minCount && !taken.has(w)).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  for (const [w] of words) {
    if (tokens.length >= maxSize) break;
    tokens.push(w);
  }
  return vocabFromTokens(tokens);
}
