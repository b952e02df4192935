import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transferProgress } from '../src/cache/transfer-progress.js';

/** A terminal that keeps what is written, and a clock the test moves. */
function fakes(isTTY: boolean): { out: { isTTY: boolean; written: string[]; write(t: string): void }; clock: { t: number; now: () => number } } {
  const out = { isTTY, written: [] as string[], write(t: string) { this.written.push(t); } };
  const clock = { t: 0, now: () => clock.t };
  return { out, clock };
}

test('a large transfer on a terminal draws one line in place, at most five times a second, its last state always, and clears it', () => {
  const { out, clock } = fakes(true);
  const p = transferProgress('downloading', 'train (8116d1b7)', 1 << 30, out, clock.now)!;
  assert.ok(p);
  p(0);
  clock.t = 100;
  p(256 << 20); // within 200 ms of the last line: not drawn
  clock.t = 1000;
  p(512 << 20);
  clock.t = 1050;
  p(1 << 30); // the end is drawn whatever the time
  p.end();
  assert.equal(out.written.length, 4);
  assert.match(out.written[1]!, /^\r\x1b\[Kdownloading train \(8116d1b7\): 512 \/ 1024 MiB \(50 %\), 537 MB\/s$/);
  assert.match(out.written[2]!, /1024 \/ 1024 MiB \(100 %\)/);
  assert.equal(out.written[3], '\r\x1b[K', 'cleared at the end');
});

test('no line where it would not help: output that is not a terminal, or a small transfer', () => {
  assert.equal(transferProgress('uploading', 'x', 1 << 30, fakes(false).out), undefined);
  assert.equal(transferProgress('uploading', 'x', 1 << 20, fakes(true).out), undefined);
});
