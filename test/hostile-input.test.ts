import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, dfwe, listFiles, ran, read, smallDisk, workspace, write, type CliResult } from './helpers.js';

/** The CLI with a time limit: a hang is a failure here, not a stuck test. */
function dfweWithin(cwd: string, args: string[], ms = 20_000): CliResult & { timedOut: boolean } {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
  delete env.DFWE_CACHE;
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8', timeout: ms, killSignal: 'SIGKILL' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, timedOut: r.signal === 'SIGKILL' };
}

const mkfifo = (p: string): void => {
  const r = spawnSync('mkfifo', [p]);
  assert.equal(r.status, 0, 'mkfifo');
};

const clean = (r: CliResult): void => assert.doesNotMatch(r.stderr, /internal error|\n\s+at .*\.js:\d+/, `no stack trace:\n${r.stderr}`);

test('a FIFO as a dependency, inside a dependency directory, or as the pipeline file: a located error, never a hang', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: cat data/in > out/a\n    deps: [data/in]\n    outs: { o: out/a }\n' });
  mkdirSync(join(ws, 'data'));
  mkfifo(join(ws, 'data/in'));
  const r = dfweWithin(ws, ['run']);
  assert.equal(r.timedOut, false, 'dfwe hung on the FIFO');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /dfwe\.yaml:5:12: error: dependency "data\/in" of stage "a" is a FIFO \(named pipe\); a dependency must be a regular file or a directory/);
  clean(r);

  write(ws, 'dfwe.yaml', 'version: 1\nstages:\n  a:\n    cmd: ls data > out/a\n    deps: [data]\n    outs: { o: out/a }\n');
  const dir = dfweWithin(ws, ['status']);
  assert.equal(dir.timedOut, false);
  assert.equal(dir.code, 2, dir.stderr);
  assert.match(dir.stderr, /dfwe\.yaml:5:12: error: dependency "data" of stage "a": in is a FIFO \(named pipe\)/);

  mkfifo(join(ws, 'pipe.yaml'));
  const p = dfweWithin(ws, ['status', 'pipe.yaml']);
  assert.equal(p.timedOut, false);
  assert.equal(p.code, 2);
  assert.match(p.stderr, /pipe\.yaml is a FIFO \(named pipe\), not a pipeline file/);
});

test('a dependency symlinked to /dev/zero is refused, whether or not /dev is allowed', () => {
  const yaml = (extra: string) => `version: 1\n${extra}stages:\n  a:\n    cmd: head -c 1 data/z > out/a\n    deps: [data/z]\n    outs: { o: out/a }\n`;
  const ws = workspace({ 'dfwe.yaml': yaml('') });
  mkdirSync(join(ws, 'data'));
  symlinkSync('/dev/zero', join(ws, 'data/z'));
  const r = dfweWithin(ws, ['run']);
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /dependency "data\/z" of stage "a" is really \/dev\/zero, outside the workspace/);
  write(ws, 'dfwe.yaml', yaml('allow_outside: [/dev]\n'));
  const allowed = dfweWithin(ws, ['run']);
  assert.equal(allowed.timedOut, false, 'dfwe read /dev/zero forever');
  assert.equal(allowed.code, 2, allowed.stderr);
  assert.match(allowed.stderr, /dependency "data\/z" of stage "a" is a character device; a dependency must be a regular file or a directory/);
});

test('a symlink loop inside a dependency directory is a located error', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: ls -R data > out/a\n    deps: [data]\n    outs: { o: out/a }\n', 'data/ok.txt': 'fine\n' });
  symlinkSync('.', join(ws, 'data/self'));
  symlinkSync('loop2', join(ws, 'data/loop1'));
  symlinkSync('loop1', join(ws, 'data/loop2'));
  const r = dfweWithin(ws, ['run']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /dfwe\.yaml:5:12: error: dependency "data" of stage "a": loop1 is a symlink loop/);
  rmSync(join(ws, 'data/loop1'));
  rmSync(join(ws, 'data/loop2'));
  const self = dfweWithin(ws, ['run']);
  assert.equal(self.code, 2, self.stderr);
  assert.match(self.stderr, /dependency "data" of stage "a": self leads back into a directory that contains it \(a symlink loop\)/);
  clean(self);
});

test('a stage whose output is a FIFO, or holds one, fails with the path named', () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nstages:\n  f:\n    cmd: mkdir -p out && mkfifo out/f\n    outs: { o: out/f }\n  d:\n    cmd: mkdir -p out/d && mkfifo out/d/p && echo x > out/d/x\n    outs: { o: out/d }\n',
  });
  const r = dfweWithin(ws, ['run', '--keep-going']);
  assert.equal(r.timedOut, false, 'dfwe hung on a FIFO output');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED +f: output "o" \(out\/f\) is a FIFO \(named pipe\): an output must be a regular file or a directory/);
  assert.match(r.stderr, /FAILED +d: output "o" \(out\/d\): p is a FIFO \(named pipe\); only regular files, directories and symlinks can be stored/);
  assert.equal(listFiles(join(ws, 'cache/records')).length, 0);
});

test('memo and attempt files of the right JSON but the wrong shape are read as absent, never a crash', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo a > out/a\n    deps: [in.txt]\n    outs: { f: out/a }\n', 'in.txt': 'x\n' });
  assert.equal(dfwe(ws, ['run']).code, 0);
  // JSON memos and attempts, and the files of columns: the file-digest memo, and the snapshot
  // where one was written (not when in.txt is younger than 2 s, as it may be here).
  const files = listFiles(join(ws, 'cache')).filter((f) => /^(state|nodes)\/.*\.(json|cols|snap)$/.test(f));
  assert.ok(files.length >= 3 && files.some((f) => f.endsWith('.cols')), files.join());
  for (const junk of ['{}', 'null', '5', '[]', '"x"', '{"nodes": 3}']) {
    for (const f of files) writeFileSync(join(ws, 'cache', f), junk);
    for (const cmd of [['run'], ['status'], ['why', 'a'], ['show', 'a']]) {
      const r = dfwe(ws, cmd);
      assert.equal(r.code, 0, `${cmd.join(' ')} with ${junk}: ${r.stderr}`);
      clean(r);
    }
    assert.deepEqual(ran(dfwe(ws, ['run'])), []);
  }
});

test('an environment problem is said as one, not as a bug: a built-in stage given a task its model has no head for', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  data: { uses: prepare-data, with: { source: synthetic, scenes: 40, train: 20, dev: 10, test: 10, tasks: [emotion] } }
  vocab: { uses: vocab, with: { data: "\${{ stages.data.outs.data }}" } }
  base: { uses: init-model, with: { vocab: "\${{ stages.vocab.outs.vocab }}", embed_dim: 8, hidden: 8 } }
  score:
    uses: evaluate
    with: { data: "\${{ stages.data.outs.data }}", vocab: "\${{ stages.vocab.outs.vocab }}", model: "\${{ stages.base.outs.model }}", tasks: [emotion] }
`,
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED +score: stage evaluate failed \(exit code 1\)/);
  assert.match(r.stderr, /error: the model has no head for task "emotion" \(it has none\): finetune it on that task first/);
  clean(r);
});

test('a read-only cache: a run with nothing to do succeeds, one with work says why it cannot', (t) => {
  const disk = smallDisk(t, '8m');
  if (!disk) return;
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nparams: { v: 1 }\nstages:\n  a:\n    cmd: echo ${{ params.v }} > out/a\n    outs: { f: out/a }\n' });
  const cache = join(disk.dir, 'cache');
  assert.equal(dfwe(ws, ['run', '--cache', cache]).code, 0);
  disk.remount('ro');
  const noop = dfwe(ws, ['run', '--cache', cache]);
  assert.equal(noop.code, 0, noop.stderr);
  assert.match(noop.stderr, /the cache .* is read-only; every result is already in place, so nothing needed writing/);
  assert.match(noop.stderr, /1 nodes?: 0 ran, 1 cached/);
  assert.equal(dfwe(ws, ['status', '--cache', cache]).code, 0);
  const work = dfwe(ws, ['run', '--cache', cache, '--param', 'v=2']);
  assert.equal(work.code, 2, work.stderr);
  assert.match(work.stderr, /the cache cannot be written \(.*: the filesystem is read-only \(EROFS\)\); 1 node would need it \(a\)/);
  assert.match(work.stderr, /hint: use a writable cache: --cache DIR or DFWE_CACHE/);
  clean(work);
  assert.equal(read(ws, 'out/a'), '1\n');
});
