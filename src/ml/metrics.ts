import type { MetricName } from './data/types.js';

/*
 * Metrics as TLiDB defines them for the Friends tasks. A task's score is the mean of its
 * metrics × 100.
 */

function f1(tp: number, fp: number, fn: number): number {
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** Single-label classification: accuracy, and F1 micro / macro / weighted over the classes. */
export function classification(gold: number[], pred: number[], classes: number): Record<'accuracy' | 'f1_micro' | 'f1_macro' | 'f1_weighted', number> {
  const tp = new Array(classes).fill(0);
  const fp = new Array(classes).fill(0);
  const fn = new Array(classes).fill(0);
  const support = new Array(classes).fill(0);
  let correct = 0;
  gold.forEach((g, i) => {
    const p = pred[i]!;
    support[g]++;
    if (p === g) {
      tp[g]++;
      correct++;
    } else {
      fp[p]++;
      fn[g]++;
    }
  });
  const perClass = tp.map((t, c) => f1(t, fp[c], fn[c]));
  // Macro over the classes that occur in gold or predictions (as scikit-learn does with labels=present).
  const present = perClass.map((_, c) => support[c] > 0 || fp[c] > 0);
  const nPresent = present.filter(Boolean).length;
  const sumTp = tp.reduce((a, b) => a + b, 0);
  const sumFp = fp.reduce((a, b) => a + b, 0);
  const sumFn = fn.reduce((a, b) => a + b, 0);
  return {
    accuracy: gold.length ? correct / gold.length : 0,
    f1_micro: f1(sumTp, sumFp, sumFn),
    f1_macro: nPresent ? perClass.reduce((a, v, c) => a + (present[c] ? v : 0), 0) / nPresent : 0,
    f1_weighted: gold.length ? perClass.reduce((a, v, c) => a + v * support[c], 0) / gold.length : 0,
  };
}

/** Multi-label: micro F1 over the scored classes, and accuracy over (example, class) pairs. */
export function multilabel(gold: number[][], pred: number[][], classes: number, unscored: number[] = []): Record<'multilabel_f1_micro' | 'label_accuracy', number> {
  const skip = new Set(unscored);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let right = 0;
  let pairs = 0;
  gold.forEach((g, i) => {
    const gs = new Set(g);
    const ps = new Set(pred[i]);
    for (let c = 0; c < classes; c++) {
      const inG = gs.has(c);
      const inP = ps.has(c);
      pairs++;
      if (inG === inP) right++;
      if (skip.has(c)) continue;
      if (inG && inP) tp++;
      else if (inP) fp++;
      else if (inG) fn++;
    }
  });
  return { multilabel_f1_micro: f1(tp, fp, fn), label_accuracy: pairs ? right / pairs : 0 };
}

/** SQuAD-style answer normalisation: lower case, no punctuation, no articles, single spaces. */
export function normalizeAnswer(s: string): string {
  return s.toLowerCase().replace(/[^\w\s]/g, ' ').replace(/\b(a|an|the)\b/g, ' ').split(/\s+/).filter(Boolean).join(' ');
}

export function tokenF1(pred: string, gold: string): number {
  const p = normalizeAnswer(pred).split(' ').filter(Boolean);
  const g = normalizeAnswer(gold).split(' ').filter(Boolean);
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Span answers: exact match and token F1, each the best over the gold answers. */
export function spans(golds: string[][], preds: string[]): Record<'exact_match' | 'token_f1', number> {
  let em = 0;
  let tf = 0;
  preds.forEach((p, i) => {
    const g = golds[i]!;
    em += Math.max(0, ...g.map((x) => (normalizeAnswer(x) === normalizeAnswer(p) ? 1 : 0)));
    tf += Math.max(0, ...g.map((x) => tokenF1(p, x)));
  });
  return { exact_match: preds.length ? em / preds.length : 0, token_f1: preds.length ? tf / preds.length : 0 };
}

/** A task's score: the mean of its metrics × 100. */
export function score(values: Partial<Record<MetricName, number>>, metrics: MetricName[]): number {
  const xs = metrics.map((m) => values[m] ?? 0);
  return (100 * xs.reduce((a, b) => a + b, 0)) / Math.max(1, xs.length);
}
