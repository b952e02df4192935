import type { Dataset } from './data/dataset-io.js';
import type { Span, Split } from './data/types.js';
import { classification, multilabel, score, spans } from './metrics.js';

/**
 * The majority baseline of a task, scored with the task's own metrics: the most frequent class
 * (single), each label when it is on in most training examples (multi), the most frequent
 * candidate position (choice), the most frequent answer text (span).
 */
export function majorityScore(ds: Dataset, task: string, split: Split = 'test'): number {
  const info = ds.manifest.tasks[task]!;
  const train = ds.examples(task, 'train');
  const test = ds.examples(task, split);
  const mostFrequent = <T>(xs: T[]): T => {
    const counts = new Map<string, { x: T; n: number }>();
    for (const x of xs) {
      const k = JSON.stringify(x);
      const c = counts.get(k) ?? { x, n: 0 };
      c.n++;
      counts.set(k, c);
    }
    return [...counts.values()].sort((a, b) => b.n - a.n)[0]!.x;
  };
  const textOf = (d: string, s: Span): string => ds.dialogues.get(d)!.turns[s.turn]!.text.split(' ').slice(s.start, s.end + 1).join(' ');
  switch (info.kind) {
    case 'single': {
      const c = mostFrequent(train.map((e) => e.label as number));
      return score(classification(test.map((e) => e.label as number), test.map(() => c), info.labels!.length), info.metrics);
    }
    case 'multi': {
      const on = info.labels!.map((_, c) => train.filter((e) => (e.label as number[]).includes(c)).length > train.length / 2);
      const pred = on.flatMap((v, c) => (v ? [c] : []));
      return score(multilabel(test.map((e) => e.label as number[]), test.map(() => pred), info.labels!.length, info.unscored), info.metrics);
    }
    case 'choice': {
      const c = mostFrequent(train.map((e) => e.label as number));
      const acc = test.filter((e) => e.label === c).length / Math.max(1, test.length);
      return score({ exact_match: acc, accuracy: acc }, info.metrics);
    }
    case 'span': {
      const answer = mostFrequent(train.map((e) => textOf(e.dialogue, (e.label as Span[])[0]!)));
      return score(spans(test.map((e) => (e.label as Span[]).map((s) => textOf(e.dialogue, s))), test.map(() => answer)), info.metrics);
    }
  }
}
