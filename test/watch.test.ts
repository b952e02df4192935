import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, dfweAsync, read, readNow, waitFor, workspace, write } from './helpers.js';

/** With `hold`, a says it started and then waits for the test's `go` file. */
const P = (word: string, n: number, hold = false): string => `version: 1
params: { word: ${word}, n: ${n} }
stages:
  a:
    cmd: mkdir -p out && cat data/in.txt > out/a${hold ? ' && touch a-started && while [ ! -e go ]; do sleep 0.05; done' : ''}
    deps: [data/in.txt]
    outs: { f: out/a }
  b:
    cmd: echo \${{ params.word }} | cat \${{ stages.a.outs.f }} - > out/b
    outs: { f: out/b }
  c:
    cmd: seq \${{ params.n }} | cat \${{ stages.a.outs.f }} - > out/c
    outs: { f: out/c }
`;

/** When each node last ran, from its node record. */
function lastRuns(ws: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of ['a', 'b', 'c']) out[id] = JSON.parse(dfwe(ws, ['show', id, '--json']).stdout).lastAttempt?.at;
  return out;
}

test('watch: an edit reruns only the affected nodes; a bad edit is reported and watching goes on', async () => {
  const ws = workspace({ 'dfwe.yaml': P('hi', 2), 'data/in.txt': 'x\n' });
  const w = dfweAsync(ws, ['watch']);
  const rounds = (): number => (w.output().match(/dfwe watch: watching/g) ?? []).length;
  try {
    await waitFor(() => rounds() >= 1, 20_000, 'the first run');
    const before = lastRuns(ws);
    assert.ok(before.a && before.b && before.c);

    write(ws, 'dfwe.yaml', P('yo', 2));
    await waitFor(() => rounds() >= 2, 20_000, 'the run after the edit');
    const after = lastRuns(ws);
    assert.equal(after.a, before.a, 'a did not rerun');
    assert.equal(after.c, before.c, 'c did not rerun');
    assert.notEqual(after.b, before.b, 'b reran');
    assert.equal(read(ws, 'out/b'), 'x\nyo\n');

    write(ws, 'dfwe.yaml', P('yo', 2).replace('stages:', 'stages:\n  broken: [\n'));
    await waitFor(() => /fix the pipeline; still watching/.test(w.output()), 20_000, 'the error report');
    assert.match(w.output(), /dfwe\.yaml:\d+:\d+: error: YAML/);
    assert.equal(w.child.exitCode, null, 'still running');

    write(ws, 'dfwe.yaml', P('yo', 3));
    await waitFor(() => readNow(ws, 'out/c') === 'x\n1\n2\n3\n', 20_000, 'c to rerun after the fix');
    const fixed = lastRuns(ws);
    assert.equal(fixed.a, before.a);
    assert.equal(fixed.b, after.b);

    write(ws, 'data/in.txt', 'y\n');
    await waitFor(() => readNow(ws, 'out/b') === 'y\nyo\n' && readNow(ws, 'out/c') === 'y\n1\n2\n3\n', 20_000, 'a dep change to flow through');

    // Each of watch's runs is in the history, as a run of its own.
    const history = (JSON.parse(dfwe(ws, ['runs', '--json']).stdout) as { runs: { command: string; ran: number; changed: string }[] }).runs;
    assert.ok(history.length >= 4, `${history.length} runs recorded`);
    assert.ok(history.every((r) => r.command === 'watch'));
    assert.deepEqual(history.slice(0, 3).map((r) => [r.ran, r.changed]), [[3, '(first run)'], [1, 'word: hi → yo, pipeline edited'], [1, 'n: 2 → 3, pipeline edited']]);
  } finally {
    w.child.kill('SIGINT');
    const r = await w.done;
    assert.equal(r.code, 0, r.stderr);
  }
});

test('watch: an edit during a run does not interrupt it; one more run picks it up', async () => {
  const ws = workspace({ 'dfwe.yaml': P('hi', 2), 'data/in.txt': 'x\n' });
  const w = dfweAsync(ws, ['watch']);
  try {
    await waitFor(() => /dfwe watch: watching/.test(w.output()), 20_000, 'the first run');
    write(ws, 'dfwe.yaml', P('hi', 2, true)); // a reruns, and holds on until the test lets it go
    await waitFor(() => existsSync(join(ws, 'a-started')), 20_000, 'a to start');
    write(ws, 'data/in.txt', 'z\n'); // lands while a runs
    await waitFor(() => /data\/in\.txt changed during the run; one more run when it ends/.test(w.output()), 20_000, 'watch to see the change during the run');
    write(ws, 'go', '');
    await waitFor(() => /changed during the run; running again/.test(w.output()), 20_000, 'the queued run');
    await waitFor(() => readNow(ws, 'out/b') === 'z\nhi\n', 20_000, 'the edit to take effect');
    assert.doesNotMatch(w.output(), /interrupted/);
  } finally {
    w.child.kill('SIGINT');
    await w.done;
  }
});

test('watch with no pipeline argument: ./dfwe.yaml vanishing for a moment is a missing file, not a switch to the quickstart', async () => {
  const ws = workspace({ 'dfwe.yaml': P('hi', 2), 'data/in.txt': 'x\n' });
  const w = dfweAsync(ws, ['watch']);
  const rounds = (): number => (w.output().match(/dfwe watch: watching/g) ?? []).length;
  try {
    await waitFor(() => rounds() >= 1, 20_000, 'the first run');
    rmSync(join(ws, 'dfwe.yaml'));
    await waitFor(() => /pipeline file not found: dfwe\.yaml/.test(w.output()), 20_000, 'the missing file to be reported');
    assert.match(w.output(), /fix the pipeline; still watching/);
    write(ws, 'dfwe.yaml', P('back', 2));
    await waitFor(() => readNow(ws, 'out/b') === 'x\nback\n', 20_000, 'the pipeline to run again once it is back');
    assert.doesNotMatch(w.output(), /run +(data|vocab|base)\b/, 'the quickstart never started');
    assert.equal(existsSync(join(ws, 'out/data')), false);
  } finally {
    w.child.kill('SIGINT');
    await w.done;
  }
});
