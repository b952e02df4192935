import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dfwe, dfweAsync, read, waitFor, workspace } from './helpers.js';

test('a background child that outlives its stage is stopped before the outputs are committed', async () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  o:
    cmd: echo start > \${{ outs.f }}; (sleep 0.5; echo LATE >> \${{ outs.f }}) &
    outs: { f: out/o }
  y:
    cmd: cat \${{ stages.o.outs.f }} > \${{ outs.f }}
    outs: { f: out/y }
`,
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  await new Promise((res) => setTimeout(res, 1000));
  assert.equal(read(ws, 'out/o'), 'start\n', 'nothing appended after the commit');
  assert.equal(read(ws, 'out/y'), 'start\n');
  assert.match(dfwe(ws, ['verify']).stdout, / 0 corrupt/);
  assert.match(dfwe(ws, ['show', 'o', '--log']).stdout, /the stage left [12] process(es)? running after it exited; stopped before its outputs were stored/);
  assert.match(dfwe(ws, ['status']).stdout, /2 cached, 0 will run/);
});

test('Ctrl-C with a stage that ignores SIGTERM: it is killed after the grace period', async () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  stubborn:\n    cmd: trap "" TERM; echo up > up.txt; sleep 60; sleep 60\n    outs: { f: out/never }\n' });
  const run = dfweAsync(ws, ['run'], { DFWE_STOP_GRACE: '1' });
  await waitFor(() => { try { return read(ws, 'up.txt') === 'up\n'; } catch { return false; } }, 20_000, 'the stage to start');
  const t0 = Date.now();
  run.child.kill('SIGINT');
  const done = await Promise.race([run.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000))]);
  if (!done) run.child.kill('SIGKILL');
  assert.ok(done, 'dfwe ended after Ctrl-C');
  assert.equal(done!.code, 130, done!.stderr);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
  assert.match(dfwe(ws, ['status']).stdout, /will run +stubborn/);
});

/** A process that runs code: not gone, and not a zombie (which no one may be left to reap). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The pid of the spawner process a dfwe run started (a child of it running spawner.js). */
function spawnerOf(enginePid: number): number | undefined {
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === enginePid && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('spawner.js')) return Number(p);
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

test('the process starter killed under a running stage: the stage is stopped, its node fails and says why, nothing is stored', async () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  slow:\n    cmd: echo $$ > pid.txt; sleep 60; echo done > ${{ outs.f }}\n    outs: { f: out/slow }\n' });
  const run = dfweAsync(ws, ['run']);
  await waitFor(() => { try { return /^\d+\n$/.test(read(ws, 'pid.txt')); } catch { return false; } }, 20_000, 'the stage to start');
  const spawner = spawnerOf(run.child.pid!);
  assert.ok(spawner, 'shell commands are started by the spawner process');
  process.kill(spawner, 'SIGKILL');
  const done = await Promise.race([run.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000))]);
  if (!done) run.child.kill('SIGKILL');
  assert.ok(done, 'the run ended');
  assert.equal(done!.code, 1, done!.stderr);
  assert.match(done!.stderr, /slow.*dfwe's process starter stopped/s);
  const stage = Number(read(ws, 'pid.txt'));
  assert.ok(!running(stage), 'the stage is gone with its starter');
  assert.match(dfwe(ws, ['status']).stdout, /will run +slow/);
});
