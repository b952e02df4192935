import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { outputLeaseName } from '../src/cache/lease.js';
import { dfwe, dfweAsync, listFiles, ran, read, waitFor, workspace, markedCache } from './helpers.js';

/** Every record in the cache parses and names only objects that exist; no temp file is visible. */
function assertCacheWhole(ws: string): number {
  const cache = join(ws, 'cache');
  const records = listFiles(join(cache, 'records'));
  for (const r of records) {
    assert.doesNotMatch(r, /\.tmp-/, `temp file left among records: ${r}`);
    const rec = JSON.parse(readFileSync(join(cache, 'records', r), 'utf8'));
    for (const o of Object.values(rec.outputs) as { digest: string }[]) {
      assert.ok(listFiles(join(cache, 'objects')).includes(`${o.digest.slice(0, 2)}/${o.digest}`), `record ${r} names a missing object`);
    }
  }
  for (const o of listFiles(join(cache, 'objects'))) assert.doesNotMatch(o, /\.tmp-/, `temp file left among objects: ${o}`);
  return records.length;
}

test('kill -9 of dfwe mid-run: finished nodes are cache hits, no partial entry, the rerun completes', async () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  q1: { cmd: "mkdir -p out && echo 1 > out/q1", outs: { f: out/q1 } }
  q2: { cmd: "mkdir -p out && echo 2 > out/q2", outs: { f: out/q2 } }
  q3: { cmd: "mkdir -p out && echo 3 > out/q3", outs: { f: out/q3 } }
  slow:
    cmd: mkdir -p out && echo started >> started.log && sleep 30 && echo slow > out/slow
    outs: { f: out/slow }
  after:
    cmd: cat \${{ stages.slow.outs.f }} \${{ stages.q1.outs.f }} > out/after
    outs: { f: out/after }
`,
  });
  const run = dfweAsync(ws, ['run', '--jobs', '4']);
  await waitFor(() => /done\s+q1/.test(run.output()) && /done\s+q2/.test(run.output()) && /done\s+q3/.test(run.output()) && /run\s+slow/.test(run.output()), 20_000, 'quick nodes to finish');
  await waitFor(() => { try { return read(ws, 'started.log').length > 0; } catch { return false; } }, 10_000, 'slow to start');
  run.child.kill('SIGKILL');
  await run.done;
  assert.equal(assertCacheWhole(ws), 3);

  // The rerun breaks the dead run's lease (killing its orphaned `sleep`), reuses the finished nodes.
  writeFileSync(join(ws, 'dfwe.yaml'), read(ws, 'dfwe.yaml').replace('sleep 30', 'sleep 0'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['after', 'slow']);
  assert.equal(read(ws, 'out/after'), 'slow\n1\n');
  assert.equal(assertCacheWhole(ws), 5);
  assert.deepEqual(readdirSync(join(ws, 'cache/tmp')), [], 'dead staging cleaned');
});

test('four runs at once on one workspace: all finish, each node executes exactly once', async () => {
  const stages = Array.from({ length: 12 }, (_, i) => `  n${i}:
    cmd: mkdir -p out runs && echo x >> runs/n${i} && sleep 0.2 && echo ${i} > out/n${i}
    outs: { f: out/n${i} }`).join('\n');
  const ws = workspace({
    'dfwe.yaml': `version: 1\nstages:\n${stages}\n  total:\n    cmd: cat ${Array.from({ length: 12 }, (_, i) => `\${{ stages.n${i}.outs.f }}`).join(' ')} > out/total\n    outs: { f: out/total }\n`,
  });
  const runs = Array.from({ length: 4 }, () => dfweAsync(ws, ['run', '--jobs', '3']));
  const results = await Promise.all(runs.map((r) => r.done));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  for (let i = 0; i < 12; i++) assert.equal(read(ws, `runs/n${i}`), 'x\n', `n${i} executed more than once`);
  assert.equal(read(ws, 'out/total').split('\n').filter(Boolean).length, 12);
  assertCacheWhole(ws);
  const totalRuns = results.reduce((a, r) => a + (r.stderr.match(/^run\s+/gm) ?? []).length, 0);
  assert.equal(totalRuns, 13);
});

test('a lease held by a dead process is broken automatically; a live one is waited for and named', async () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: mkdir -p out && echo a > out/a\n    outs: { f: out/a }\n' });
  mkdirSync(join(markedCache(join(ws, 'cache')), 'locks'), { recursive: true });
  // pid 2^22 + 1 is above Linux's largest pid_max: no such process.
  writeFileSync(join(ws, 'cache/locks', `${outputLeaseName(ws, 'out/a')}.lock`), JSON.stringify({ pid: 4194305, host: hostname(), since: 'then', what: 'a' }));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['a']);

  // A live holder: this test process. The run waits, says who holds it, and goes on once released.
  const ws2 = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: mkdir -p out && echo a > out/a\n    outs: { f: out/a }\n' });
  const lock = join(ws2, 'cache/locks', `${outputLeaseName(ws2, 'out/a')}.lock`);
  mkdirSync(join(markedCache(join(ws2, 'cache')), 'locks'), { recursive: true });
  writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), since: 'now', what: 'a' }));
  const waiting = dfweAsync(ws2, ['run']);
  await waitFor(() => /wait\s+a: another run holds it \(pid \d+/.test(waiting.output()), 10_000, 'the wait message');
  const { rmSync } = await import('node:fs');
  rmSync(lock);
  const done = await waiting.done;
  assert.equal(done.code, 0, done.stderr);
  assert.equal(read(ws2, 'out/a'), 'a\n');
});

test('breaking a dead run\'s lease never kills a process that took its job\'s pid since (pids wrap at 32,768)', async () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: mkdir -p out && echo a > out/a\n    outs: { f: out/a }\n' });
  // Someone else's process, leading a group of its own: the pid the dead run's job once had.
  const other = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  try {
    mkdirSync(join(markedCache(join(ws, 'cache')), 'locks'), { recursive: true });
    const job = { executor: 'local', id: other.pid, start: 'a start time long past' };
    writeFileSync(join(ws, 'cache/locks', `${outputLeaseName(ws, 'out/a')}.lock`), `${JSON.stringify({ pid: 4194305, host: hostname(), since: 'then', what: 'a' })}\n${JSON.stringify({ job })}`);
    const r = dfwe(ws, ['run']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ran(r), ['a']);
    // Killed, it would be a zombie until reaped: give the event loop a moment to see its exit.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual([other.exitCode, other.signalCode], [null, null], 'the unrelated process is alive');
  } finally {
    other.kill('SIGKILL');
  }
});
