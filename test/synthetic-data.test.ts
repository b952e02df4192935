import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSynthetic, SYNTHETIC_TASKS } from '../src/ml/data/synthetic.js';
import type { Span } from '../src/ml/data/types.js';

const opts = { seed: 7, scenes: 400, sizes: { train: 60, dev: 30, test: 30 }, trainPerTask: { emotion: 10 } };

test('the synthetic corpus is deterministic from its seed, and another seed gives another corpus', () => {
  const a = generateSynthetic(opts);
  const b = generateSynthetic(opts);
  assert.deepEqual(a, b);
  const c = generateSynthetic({ ...opts, seed: 8 });
  assert.notDeepEqual(a.dialogues, c.dialogues);
});

test('every task has the sizes asked for, valid labels, and splits that share no dialogue', () => {
  const { tasks, dialogues, examples } = generateSynthetic(opts);
  assert.deepEqual(tasks.map((t) => t.name), SYNTHETIC_TASKS.map((t) => t.name));
  assert.ok(tasks.length >= 5);
  const byId = new Map(dialogues.map((d) => [d.id, d]));
  for (const t of tasks) {
    const ex = examples[t.name]!;
    assert.equal(ex.train.length, t.name === 'emotion' ? 10 : 60, t.name);
    assert.equal(ex.dev.length, 30, t.name);
    assert.equal(ex.test.length, 30, t.name);
    const dialoguesOf = (xs: typeof ex.train): Set<string> => new Set(xs.map((e) => e.dialogue));
    const tr = dialoguesOf(ex.train);
    for (const e of [...ex.dev, ...ex.test]) assert.ok(!tr.has(e.dialogue), `${t.name}: a dev/test dialogue is also in train`);
    for (const e of [...ex.train, ...ex.dev, ...ex.test]) {
      const d = byId.get(e.dialogue)!;
      assert.ok(d, 'example refers to a dialogue');
      if (t.kind === 'single') assert.ok(Number.isInteger(e.label) && (e.label as number) < t.labels!.length);
      if (t.kind === 'multi') assert.ok((e.label as number[]).every((l) => l < t.labels!.length));
      if (t.kind === 'choice') assert.equal(d.turns.some((u) => u.speaker === e.candidates![e.label as number]), true);
      if (t.kind === 'span') {
        for (const s of e.label as Span[]) {
          const toks = d.turns[s.turn]!.text.split(' ');
          assert.ok(s.start >= 0 && s.end < toks.length && s.start <= s.end);
          assert.equal(d.turns[s.turn]!.speaker, /did (\w+) talk/.exec(e.item!)![1]);
        }
      }
    }
  }
});

test('labels are not degenerate: every class of the single-label tasks occurs', () => {
  const { tasks, examples } = generateSynthetic({ ...opts, sizes: { train: 300, dev: 10, test: 10 }, trainPerTask: {} });
  for (const t of tasks.filter((x) => x.kind === 'single')) {
    const seen = new Set(examples[t.name]!.train.map((e) => e.label as number));
    assert.equal(seen.size, t.labels!.length, `${t.name} uses ${seen.size} of ${t.labels!.length} classes`);
  }
});
