import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/*
 * A stage the engine cannot name. Its process group is how dfwe stops a stage, but the group is
 * known only once the starter says the pid: a starter killed in between, or an engine killed
 * before it kept the handle, leaves a stage running that no one knows of, writing its output
 * later, where the next run refuses to replace it (or mixes it into its own). These starters
 * stand in for the real one (as DFWE_PYTHON) and die or hang at exactly that moment.
 */
function fakeStarter(mode: 'die' | 'hang'): string {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-fake-starter-'));
  writeFileSync(join(dir, 'starter.mjs'), `import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { createInterface } from 'node:readline';
let base;
process.stdout.write('{"ready":true}\\n');
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  if (m.base) { base = m.base; return; }
  const env = { ...base };
  for (const [k, v] of Object.entries(m.env)) { if (v === null) delete env[k]; else env[k] = v; }
  const log = openSync(m.log, 'a');
  spawn(m.file, m.args, { cwd: m.cwd, env, stdio: ['ignore', log, log], detached: true }).unref();
  ${mode === 'die' ? "process.kill(process.pid, 'SIGKILL');" : '// never says the pid'}
});
`);
  const python = join(dir, 'python3');
  writeFileSync(python, `#!/bin/sh\nexec '${process.execPath}' '${join(dir, 'starter.mjs')}'\n`);
  chmodSync(python, 0o755);
  return python;
}

const LATE_WRITER = 'version: 1\nstages:\n  s:\n    cmd: echo $$ > pid.txt; sleep ${SLOW:-0}; echo late > ${{ outs.f }}\n    outs: { f: out/s }\n';
const pidIn = (ws: string): number | undefined => (existsSync(join(ws, 'pid.txt')) ? Number(read(ws, 'pid.txt')) || undefined : undefined);

test('a starter killed before it says the pid: the stage it started is found and stopped before its node fails', async () => {
  const ws = workspace({ 'dfwe.yaml': LATE_WRITER });
  const r = dfwe(ws, ['run'], { DFWE_PYTHON: fakeStarter('die'), SLOW: '2' });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /s.*dfwe's process starter stopped/s);
  const stage = pidIn(ws);
  assert.ok(stage === undefined || !running(stage), 'the stage no one was told of is gone when its node fails');
  await new Promise((res) => setTimeout(res, 2500));
  assert.equal(existsSync(join(ws, 'out/s')), false, 'nothing wrote the output after the run');
  const again = dfwe(ws, ['run'], { SLOW: '0' });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(read(ws, 'out/s'), 'late\n');
});

/** When a process started, in clock ticks since boot, as /proc says (field 22 of its stat). */
function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

// A dead run's stage is stopped through this handle only when its pid still names the process that
// started then (pids are reused within minutes): a wrong start would leave it running.
test("a running stage's handle names its leader and when it started, from either starter", async (t) => {
  for (const spawner of existsSync('/usr/bin/python3') ? ['python', 'node'] : ['node']) {
    await t.test(spawner, async () => {
      const ws = workspace({ 'dfwe.yaml': LATE_WRITER });
      const run = dfweAsync(ws, ['run'], { DFWE_SPAWNER: spawner, SLOW: '60' });
      const locks = join(ws, 'cache', 'locks');
      const handle = (): { id: number; start?: string } | undefined => {
        for (const f of existsSync(locks) ? readdirSync(locks).filter((n) => n.endsWith('.lock')) : []) {
          const line = readFileSync(join(locks, f), 'utf8').split('\n').find((l) => l.includes('"job"'));
          if (line) return (JSON.parse(line) as { job: { id: number; start?: string } }).job;
        }
        return undefined;
      };
      try {
        await waitFor(() => pidIn(ws) !== undefined && handle() !== undefined, 20_000, 'the stage to start');
        const stage = pidIn(ws)!;
        assert.equal(handle()!.id, stage, 'the handle names the stage\'s leader');
        assert.equal(handle()!.start, startOf(stage), 'and when it started');
      } finally {
        run.child.kill('SIGINT');
        await run.done;
      }
    });
  }
});

test('an engine killed with -9: every stage it was running stops with it, from either starter', async (t) => {
  for (const spawner of existsSync('/usr/bin/python3') ? ['python', 'node'] : ['node']) {
    await t.test(spawner, async () => {
      const ws = workspace({ 'dfwe.yaml': LATE_WRITER });
      const run = dfweAsync(ws, ['run'], { DFWE_SPAWNER: spawner, SLOW: '60' });
      await waitFor(() => pidIn(ws) !== undefined, 20_000, 'the stage to start');
      run.child.kill('SIGKILL');
      await run.done;
      const stage = pidIn(ws)!;
      await waitFor(() => !running(stage), 5_000, `the stage (pid ${stage}) to stop with its engine`);
    });
  }
});

test('an engine and its starter killed before the pid was told: the next run stops the stage before it runs the node', async () => {
  const ws = workspace({ 'dfwe.yaml': LATE_WRITER });
  const run = dfweAsync(ws, ['run'], { DFWE_PYTHON: fakeStarter('hang'), SLOW: '60' });
  await waitFor(() => pidIn(ws) !== undefined, 20_000, 'the stage to start');
  run.child.kill('SIGKILL');
  await run.done;
  const orphan = pidIn(ws)!;
  assert.ok(running(orphan), 'the stage outlived its engine (no one could name it)');
  const again = dfwe(ws, ['run'], { SLOW: '0' });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(running(orphan), false, 'the run that took over its lease stopped it');
  assert.equal(read(ws, 'out/s'), 'late\n');
});

/** This process's children, zombies included (a child stays one until it is reaped). */
function children(): number[] {
  return readdirSync('/proc/self/task').flatMap((t) => readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number));
}

// A starter that outlives its run takes its stages' CPU with it: `time dfwe run` showed a 20,002-node
// run using less CPU than make, its stages' 34 s left out.
test('a run waits for its starter to exit, from either starter: it is reaped, its CPU counted in the run', async (t) => {
  const { local } = await import('../src/execute/executors/local.js');
  for (const spawner of existsSync('/usr/bin/python3') ? ['python', 'node'] : ['node']) {
    await t.test(spawner, async () => {
      const before = process.env.DFWE_SPAWNER;
      process.env.DFWE_SPAWNER = spawner;
      try {
        const ws = workspace({});
        const executor = await local.connect();
        const r = await executor.launch({
          nodeId: 'a', tag: 'dfwe-test-a', argv: ['/bin/sh', '-c', 'true'], cwd: ws, env: { PATH: process.env.PATH }, logPath: join(ws, 'a.log'),
          resources: {}, options: {}, signal: new AbortController().signal, onHandle: () => {},
        });
        assert.equal(r.exitCode, 0);
        assert.equal(children().length, 1, 'the starter runs');
        await executor.close();
        assert.deepEqual(children(), [], 'closed: the starter is gone and reaped');
      } finally {
        if (before === undefined) delete process.env.DFWE_SPAWNER;
        else process.env.DFWE_SPAWNER = before;
      }
    });
  }
});
