import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { outputLeaseName } from '../src/cache/lease.js';
import { dfwe, dfweAsync, listFiles, ran, read, smallDisk, waitFor, workspace, type CliResult, markedCache } from './helpers.js';

/** The lines a run printed for nodes it executed. */
const executed = (r: CliResult): number => (r.stderr.match(/^run\s+/gm) ?? []).length;

test('two versions of a pipeline at once in one workspace: no record mixes them', async () => {
  // v1's y holds on until the test lets it go, so v2 starts while v1's y reads x: no timing.
  const version = (v: string, y: string): string => `version: 1
stages:
  x:
    cmd: echo ${v} > out/x
    outs: { o: out/x }
  y:
    cmd: ${y}cat \${{ stages.x.outs.o }} > out/y
    outs: { o: out/y }
`;
  const ws = workspace({ 'v1.yaml': version('V1', 'touch y-started; while [ ! -e go ]; do sleep 0.05; done; '), 'v2.yaml': version('V2', '') });
  const first = dfweAsync(ws, ['run', 'v1.yaml']);
  await waitFor(() => existsSync(join(ws, 'y-started')), 60_000, "v1's y to start");
  const second = dfweAsync(ws, ['run', 'v2.yaml']);
  await waitFor(() => /^wait\s+x:/m.test(second.output()), 60_000, "v2's x to wait for v1's y, which reads x");
  writeFileSync(join(ws, 'go'), '');
  const [r1, r2] = await Promise.all([first.done, second.done]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(read(ws, 'out/y'), 'V2\n', 'v2 ran last: its y read its own x');
  const last = dfwe(ws, ['run', 'v1.yaml']);
  assert.equal(last.code, 0, last.stderr);
  assert.deepEqual(ran(last), [], 'v1 is cached');
  assert.equal(read(ws, 'out/x'), 'V1\n');
  assert.equal(read(ws, 'out/y'), 'V1\n', "v1's y holds what v1's x wrote");
});

test('a node reading many outputs holds them as one set: a second version waits to rewrite any of them', async () => {
  // v1's y reads twenty outputs and holds on until let go. It has no output path, so its one write
  // lease (on its key) comes first in the global order and its reads are all one set.
  const version = (v: string, y: string): string => `version: 1
stages:
  x:
    foreach: { i: "\${{ range(20) }}" }
    cmd: echo ${v} \${{ i }} > \${{ outs.o }}
    outs: { o: ~ }
  y:
    deps: ["\${{ stages.x.outs.o }}"]
    cmd: ${y}cat out/x/*/o
`;
  const ws = workspace({ 'v1.yaml': version('V1', 'touch y-started; while [ ! -e go ]; do sleep 0.05; done; '), 'v2.yaml': version('V2', '') });
  const first = dfweAsync(ws, ['run', 'v1.yaml']);
  await waitFor(() => existsSync(join(ws, 'y-started')), 60_000, "v1's y to start");
  assert.equal(readdirSync(join(ws, 'cache/locks/readers/.sets')).length, 1, "y's reads are one set");
  const second = dfweAsync(ws, ['run', 'v2.yaml']);
  await waitFor(() => /^wait\s+x\[i=\d+\]:/m.test(second.output()), 60_000, "v2's x to wait for v1's y, which reads every x");
  for (let i = 0; i < 20; i++) assert.equal(read(ws, `out/x/i=${i}/o`), `V1 ${i}\n`, 'no x rewritten under the reading y');
  writeFileSync(join(ws, 'go'), '');
  const [r1, r2] = await Promise.all([first.done, second.done]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  for (let i = 0; i < 20; i++) assert.equal(read(ws, `out/x/i=${i}/o`), `V2 ${i}\n`, 'v2 ran last');
  assert.deepEqual(readdirSync(join(ws, 'cache/locks/readers/.sets')), [], 'the set went with its node');
});

test('one workspace reached through a symlink: two runs do not execute a node twice', async () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nstages:\n  x:\n    cmd: "mkdir -p out; for i in 1 2 3 4 5; do echo $i >> out/x; sleep 0.2; done; echo end >> out/x"\n    outs: { o: out/x }\n',
  });
  const link = `${ws}-link`;
  symlinkSync(ws, link);
  const a = dfweAsync(ws, ['-C', ws, 'run']);
  const b = dfweAsync(ws, ['-C', link, 'run']);
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(rb.code, 0, rb.stderr);
  assert.equal(read(ws, 'out/x').split('\n').filter(Boolean).length, 6, 'x ran once');
  assert.equal(executed(ra) + executed(rb), 1);
});

test('gc while a run is in progress refuses, every time, and the run loses nothing', async () => {
  const n = 600;
  const stages = Array.from({ length: n }, (_, i) => `  s${i}:\n    cmd: echo ${i} > out/s${i}\n    outs: { f: out/s${i} }`).join('\n');
  const ws = workspace({ 'dfwe.yaml': `version: 1\nstages:\n${stages}\n` });
  const run = dfweAsync(ws, ['run', '-j1']);
  await waitFor(() => /done\s+s2\b/.test(run.output()), 30_000, 'the run to commit its first nodes');
  // Two gc loops at once, as often as they can: every gc that starts during the run must refuse.
  let refused = 0;
  const loop = async (): Promise<void> => {
    for (;;) {
      const gc = await dfweAsync(ws, ['gc']).done;
      if (gc.code === 0) {
        // Only once the run is over: it prints its summary before it lets go of the cache.
        await new Promise((r) => setTimeout(r, 300));
        assert.match(run.output(), new RegExp(`dfwe: ${n} nodes: ${n} ran`), `gc ran while a run was in progress:\n${gc.stdout}`);
        return;
      }
      assert.equal(gc.code, 2, gc.stderr);
      assert.match(gc.stderr, /a run is in progress|another dfwe gc/);
      refused++;
    }
  };
  await Promise.all([loop(), loop()]);
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(refused >= 2, `gc tried ${refused} times during the run`);
  assert.match(dfwe(ws, ['status']).stdout, new RegExp(`${n} nodes: ${n} cached, 0 will run`));
  assert.deepEqual(listFiles(join(ws, 'cache/records')).filter((f) => f.includes('.tmp')), []);
  // With the run over, gc keeps everything the pipeline reaches.
  assert.match(dfwe(ws, ['gc']).stdout, new RegExp(`kept ${n} records`));
});

test('a run waits for a gc in progress rather than racing it', async () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo a > out/a\n    outs: { f: out/a }\n' });
  // This test process plays a gc holding the cache's writer lease.
  mkdirSync(join(markedCache(join(ws, 'cache')), 'locks'), { recursive: true });
  const lock = join(ws, 'cache/locks/cache.lock');
  writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), since: 'now', what: 'dfwe gc' }));
  const run = dfweAsync(ws, ['run']);
  await waitFor(() => /waiting for dfwe gc \(pid \d+/.test(run.output()), 10_000, 'the run to wait for gc');
  assert.equal(listFiles(join(ws, 'cache/records')).length, 0, 'nothing committed while gc holds the cache');
  const { rmSync } = await import('node:fs');
  rmSync(lock);
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(read(ws, 'out/a'), 'a\n');
});

test('a live run on this host is never judged dead by an old heartbeat (a long commit blocks it)', async () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nstages:\n  slow:\n    cmd: echo x >> runs.txt; sleep 3; echo done > out/slow\n    outs: { f: out/slow }\n',
    'out/.keep': '',
  });
  const first = dfweAsync(ws, ['run']);
  const lock = join(ws, 'cache/locks', `${outputLeaseName(ws, 'out/slow')}.lock`);
  await waitFor(() => { try { return read(ws, 'runs.txt') !== ''; } catch { return false; } }, 20_000, 'the stage to start');
  // As if the holder's heartbeat had not been refreshed for five minutes.
  const past = new Date(Date.now() - 300_000);
  utimesSync(lock, past, past);
  const second = dfweAsync(ws, ['run']);
  const [r1, r2] = await Promise.all([first.done, second.done]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stderr, /wait\s+slow: another run holds it/);
  assert.equal(read(ws, 'runs.txt'), 'x\n', 'the stage ran once');
});

test('the lease heartbeat goes on while a large output is committed on the main thread', async () => {
  const files = 20_000;
  const ws = workspace({
    'dfwe.yaml': `version: 1\nstages:\n  d:\n    cmd: mkdir -p out/d && cd out/d && seq ${files} | xargs touch && touch ../../written\n    outs: { f: out/d }\n`,
  });
  const run = dfweAsync(ws, ['run'], { DFWE_LEASE_HEARTBEAT_MS: '100' });
  const lock = join(ws, 'cache/locks', `${outputLeaseName(ws, 'out/d')}.lock`);
  await waitFor(() => { try { statSync(join(ws, 'written')); return true; } catch { return false; } }, 60_000, 'the stage to finish writing');
  const beats = new Set<number>();
  while (run.child.exitCode === null) {
    try {
      beats.add(statSync(lock).mtimeMs);
    } catch {
      // released
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(beats.size >= 3, `the lease was refreshed ${beats.size} times during the commit`);
});

test('a lease file left empty (a full disk, an old version) is broken at once, not waited on', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo a > out/a\n    outs: { f: out/a }\n' });
  mkdirSync(join(markedCache(join(ws, 'cache')), 'locks'), { recursive: true });
  const lock = join(ws, 'cache/locks', `${outputLeaseName(ws, 'out/a')}.lock`);
  writeFileSync(lock, '');
  // Left by an earlier run: not one being written this moment.
  const earlier = new Date(Date.now() - 30_000);
  utimesSync(lock, earlier, earlier);
  const t0 = Date.now();
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /wait\s+a|pid undefined/);
  assert.ok(Date.now() - t0 < 20_000);
});

test('a full disk while taking a lease: a clear error, no empty lock left, the next run goes on', (t) => {
  const disk = smallDisk(t, '1m');
  if (!disk) return;
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo a > out/a\n    outs: { f: out/a }\n' });
  const cache = join(disk.dir, 'cache');
  mkdirSync(join(markedCache(cache), 'locks'), { recursive: true });
  // Fill the disk to the last byte.
  const filler = join(disk.dir, 'filler');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeFileSync(filler, chunk, { flag: 'a' });
  } catch {
    // ENOSPC: full
  }
  const full = dfwe(ws, ['run', '--cache', cache]);
  assert.equal(full.code, 1, full.stderr);
  assert.match(full.stderr, /cannot take a lease in .*: .*the disk is full \(ENOSPC\)/);
  assert.doesNotMatch(full.stderr, /internal error|at .*\.js:\d+/);
  for (const f of readdirSync(join(cache, 'locks'), { recursive: true, encoding: 'utf8' })) {
    const p = join(cache, 'locks', f);
    if (statSync(p).isFile()) assert.notEqual(readFileSync(p, 'utf8'), '', `empty lease file ${f} left behind`);
  }
  writeFileSync(filler, '');
  const t0 = Date.now();
  const again = dfwe(ws, ['run', '--cache', cache]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /wait\s+/);
  assert.ok(Date.now() - t0 < 20_000);
});
