import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchedLines } from '../src/report/reporter.js';

test('run lines are written a batch at a time, in order; what must be seen now is written at once', async () => {
  const writes: string[] = [];
  const lines = new BatchedLines((t) => writes.push(t));
  lines.add('run     a');
  lines.add('done    a (0.01s)');
  lines.add('run     b');
  assert.deepEqual(writes, [], 'held for the batch');
  await sleep(120);
  assert.deepEqual(writes, ['run     a\ndone    a (0.01s)\nrun     b\n'], 'one write, every line, in order, within the batch time');
  lines.add('run     c');
  lines.add('FAILED  c: exit 1', true);
  assert.deepEqual(writes.slice(1), ['run     c\nFAILED  c: exit 1\n'], 'a failure goes out at once, after the lines before it');
  lines.flush();
  assert.equal(writes.length, 2, 'nothing left to write');
});
