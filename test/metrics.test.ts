import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classification, multilabel, normalizeAnswer, score, spans, tokenF1 } from '../src/ml/metrics.js';
import { multiLabels } from '../src/ml/train.js';
import { FRIENDS_TASKS } from '../src/ml/data/friends.js';

const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-9, `${a} ≉ ${b}`);

test('single-label F1 micro, macro and weighted on a hand-computed case', () => {
  // gold: 0 0 1 2 ; pred: 0 1 1 1
  // class 0: tp1 fp0 fn1 → F1 2/3; class 1: tp1 fp2 fn0 → F1 2/4; class 2: tp0 fn1 → 0
  const m = classification([0, 0, 1, 2], [0, 1, 1, 1], 3);
  close(m.accuracy, 0.5);
  close(m.f1_micro, 0.5); // single-label: micro F1 = accuracy
  close(m.f1_macro, (2 / 3 + 0.5 + 0) / 3);
  close(m.f1_weighted, (2 / 3) * 0.5 + 0.5 * 0.25 + 0);
});

test('multi-label micro F1 skips unscored classes; label accuracy counts every pair', () => {
  // ex1 gold {0,2} pred {0,1}; ex2 gold {1} pred {1,2}
  const m = multilabel([[0, 2], [1]], [[0, 1], [1, 2]], 3);
  // tp: 0@1, 1@2 = 2; fp: 1@1, 2@2 = 2; fn: 2@1 = 1 → F1 = 4/7
  close(m.multilabel_f1_micro, 4 / 7);
  close(m.label_accuracy, 3 / 6);
  const u = multilabel([[0, 2], [1]], [[0, 1], [1, 2]], 3, [2]);
  // class 2 unscored: tp 2, fp 1 (1@ex1), fn 0 → 4/5
  close(u.multilabel_f1_micro, 4 / 5);
});

test('multi-label decoding keeps the top class only for tasks where every example has a label', () => {
  const logits = Float32Array.from([-2, -0.5, -1]);
  assert.deepEqual(multiLabels(logits, false), []);
  assert.deepEqual(multiLabels(logits, true), [1]);
  assert.deepEqual(multiLabels(Float32Array.from([0.3, -1, 2]), true), [0, 2]);
  // DialogRE gives every argument pair a relation ("unanswerable" included); personality traits may all be absent.
  assert.equal(FRIENDS_TASKS.relation_extraction!.info.atLeastOne, true);
  assert.equal(FRIENDS_TASKS.personality_detection!.info.atLeastOne, undefined);
});

test('span exact match and token F1 take the best gold answer, after normalisation', () => {
  assert.equal(normalizeAnswer('The  Coffee-house!'), 'coffee house');
  close(tokenF1('the big pizza', 'pizza'), 2 / 3);
  const m = spans([['pizza', 'the coffee'], ['boss']], ['Coffee', 'my boss']);
  close(m.exact_match, 0.5);
  close(m.token_f1, (1 + 2 / 3) / 2);
});

test('a task score is the mean of its metrics × 100', () => {
  close(score({ f1_micro: 0.5, f1_weighted: 0.7 }, ['f1_micro', 'f1_weighted']), 60);
});
