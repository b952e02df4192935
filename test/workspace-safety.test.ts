import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BIN, dfwe, listFiles, ran, read, workspace, write, markedCache } from './helpers.js';

/*
 * dfwe never destroys, alters or follows its way into anything that is not its own: checked
 * against real files outside a temporary workspace, made and inspected by each test.
 */

interface FileState {
  content: string;
  mode: number;
  mtimeMs: number;
  ino: number;
  nlink: number;
}

/** Everything about the files below `dir` that a careless commit would change. */
function snapshot(dir: string): Map<string, FileState> {
  const out = new Map<string, FileState>();
  for (const rel of listFiles(dir)) {
    const p = join(dir, rel);
    const st = statSync(p);
    out.set(rel, { content: readFileSync(p, 'utf8'), mode: st.mode, mtimeMs: st.mtimeMs, ino: st.ino, nlink: st.nlink });
  }
  return out;
}

/** A directory outside any workspace, holding two files of equal content (a commit would merge them). */
function outsideDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-elsewhere-'));
  writeFileSync(join(dir, 'a.txt'), 'same\n');
  writeFileSync(join(dir, 'b.txt'), 'same\n');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'secret.txt'), 'not yours\n');
  return dir;
}

const objects = (ws: string): string[] => listFiles(join(ws, 'cache/objects'));

test('an output cannot be the cache, the pipeline file, .git or all of out/: located errors, nothing deleted', () => {
  const cases: [string, RegExp][] = [
    ['{ "../../cache": ~ }', /invalid name "\.\.\/\.\.\/cache" in "outs" of stage "c"/],
    ['{ "..": ~ }', /invalid name "\.\." in "outs" of stage "c"/],
    ['{ o: cache }', /output "o" of stage "c" \(cache\) is dfwe's cache/],
    ['{ o: cache/objects }', /output "o" of stage "c" \(cache\/objects\) lies inside dfwe's cache/],
    ['{ o: .git }', /output "o" of stage "c" \(\.git\) lies inside version-control metadata \(\.git\)/],
    ['{ o: dfwe.yaml }', /output "o" of stage "c" \(dfwe\.yaml\) is the pipeline file/],
    ['{ o: conf }', /output "o" of stage "c" \(conf\) contains the pipeline file/],
  ];
  for (const [outs, message] of cases) {
    const ws = workspace({ '.git/HEAD': 'ref: refs/heads/main\n', 'keep.txt': 'mine\n' });
    // The pipeline itself lives in conf/ for the case that outputs conf.
    const pipeline = outs.includes('conf') ? 'conf/dfwe.yaml' : 'dfwe.yaml';
    write(ws, pipeline, `version: 1\nstages:\n  c:\n    cmd: mkdir -p out && echo x > out/x\n    outs: ${outs}\n`);
    mkdirSync(join(markedCache(join(ws, 'cache')), 'objects/ab'), { recursive: true });
    writeFileSync(join(ws, 'cache/objects/ab/precious'), 'cached\n');
    const before = listFiles(ws);
    const r = dfwe(ws, ['run', pipeline]);
    assert.equal(r.code, 2, `${outs}: ${r.stderr}`);
    assert.match(r.stderr, message, outs);
    assert.match(r.stderr, new RegExp(`${pipeline.replace('.', '\\.')}:\\d+:\\d+: error`), `${outs}: located`);
    assert.deepEqual(listFiles(ws), before, `${outs}: nothing was deleted or written`);
  }
});

test('an output reached through a symlink into the cache is refused where it would be replaced', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  c:\n    cmd: echo x > ${{ outs.o }}\n    outs: { o: link/objects }\n' });
  mkdirSync(join(markedCache(join(ws, 'cache')), 'objects'), { recursive: true });
  writeFileSync(join(ws, 'cache/objects/keep'), 'cached\n');
  symlinkSync(join(ws, 'cache'), join(ws, 'link'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /output "o" of stage "c" \(link\/objects\) lies inside dfwe's cache/);
  assert.equal(read(ws, 'cache/objects/keep'), 'cached\n');
});

test('an output path that holds files dfwe did not make is not deleted; the node fails and says so', () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nstages:\n  c:\n    cmd: mkdir -p src && echo generated > src/gen.txt\n    outs: { o: src }\n',
    'src/train.py': 'print("my code")\n',
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED +c: output "o" \(src\) already exists and was not made by dfwe/);
  assert.equal(read(ws, 'src/train.py'), 'print("my code")\n');
  // Once moved away, dfwe owns the path and replaces it on every run.
  rmSync(join(ws, 'src'), { recursive: true });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', read(ws, 'dfwe.yaml').replace('generated', 'generated again'));
  const again = dfwe(ws, ['run']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(read(ws, 'src/gen.txt'), 'generated again\n');
});

test('a symlink to a directory outside, made inside a directory output: nothing outside is sealed, linked or merged', () => {
  const elsewhere = outsideDir();
  const before = snapshot(elsewhere);
  const ws = workspace({ 'dfwe.yaml': `version: 1\nstages:\n  d:\n    cmd: mkdir -p out/d && echo mine > out/d/own.txt && ln -s ${elsewhere} out/d/v\n    outs: { o: out/d }\n` });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`FAILED +d: output "o" \\(out/d\\) holds v, a symlink to ${elsewhere}, outside the output`));
  assert.deepEqual(snapshot(elsewhere), before, 'outside files keep their content, mode, mtime, inode and link count');
  assert.match(dfwe(ws, ['status']).stdout, /will run +d/);
});

test('an output that is itself a symlink to an outside file is refused and the file is left as it was', () => {
  const elsewhere = outsideDir();
  const before = snapshot(elsewhere);
  const ws = workspace({ 'dfwe.yaml': `version: 1\nstages:\n  l:\n    cmd: mkdir -p out && ln -s ${join(elsewhere, 'a.txt')} out/l\n    outs: { o: out/l }\n` });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED +l: output "o" \(out\/l\) is a symlink/);
  assert.deepEqual(snapshot(elsewhere), before);
  assert.deepEqual(objects(ws), [], 'no cache object is a symlink or a link to the outside file');
  assert.match(dfwe(ws, ['verify']).stdout, /0 objects/);
});

test('a later output under a directory that an earlier stage made a symlink to outside: the outside file survives', () => {
  const elsewhere = outsideDir();
  const before = snapshot(elsewhere);
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  mk:
    cmd: mkdir -p out && ln -s ${join(elsewhere, 'sub')} out/dir && echo made > \${{ outs.o }}
    outs: { o: out/mk }
  x:
    cmd: cat \${{ stages.mk.outs.o }} > out/dir/secret.txt
    outs: { o: out/dir/secret.txt }
`,
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`FAILED +x: output "o" \\(out/dir/secret.txt\\) is really ${elsewhere}/sub/secret.txt, outside the workspace`));
  assert.deepEqual(snapshot(elsewhere), before, 'the outside file was not deleted, overwritten or sealed');
});

test('a stage that hardlinks a source file into its output: the source keeps its mode and mtime', () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nstages:\n  h:\n    cmd: mkdir -p out && ln data/raw.csv out/raw.csv\n    deps: [data/raw.csv]\n    outs: { o: out/raw.csv }\n',
    'data/raw.csv': 'a,b\n1,2\n',
  });
  const before = statSync(join(ws, 'data/raw.csv'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const after = statSync(join(ws, 'data/raw.csv'));
  assert.equal(after.mode, before.mode, 'not made read-only');
  assert.equal(after.mtimeMs, before.mtimeMs, 'not re-timed to 2000');
  assert.notEqual(after.ino, statSync(join(ws, 'out/raw.csv')).ino, 'the output is a separate cached copy');
  write(ws, 'data/raw.csv', 'a,b\n3,4\n');
  assert.equal(read(ws, 'out/raw.csv'), 'a,b\n1,2\n', 'editing the source does not change the cached output');
});

test('symlinks inside an output are stored as links and restored as links, with its empty directories', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  d:
    cmd: mkdir -p out/d/sub out/d/empty/deeper && echo data > out/d/a.txt && ln -s a.txt out/d/b && ln -s ../a.txt out/d/sub/c
    outs: { o: out/d }
  use:
    cmd: (cd \${{ stages.d.outs.o }} && find . | sort && cat sub/c) > \${{ outs.o }}
    outs: { o: out/use }
`,
  });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const listing = read(ws, 'out/use');
  rmSync(join(ws, 'out'), { recursive: true });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), [], 'restored, not recomputed');
  assert.equal(readlinkSync(join(ws, 'out/d/b')), 'a.txt');
  assert.equal(readlinkSync(join(ws, 'out/d/sub/c')), '../a.txt');
  assert.ok(lstatSync(join(ws, 'out/d/empty/deeper')).isDirectory(), 'the empty directory is back');
  assert.equal(read(ws, 'out/d/sub/c'), 'data\n');
  assert.equal(read(ws, 'out/use'), listing);
  assert.match(dfwe(ws, ['verify']).stdout, / 0 corrupt/);
});

test('a record whose output path was edited to lead out of the workspace is never followed', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: mkdir -p out && echo a > out/a\n    outs: { f: out/a }\n' });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const victim = `dfwe-victim-${process.pid}-${Date.now()}`;
  const records = listFiles(join(ws, 'cache/records'));
  assert.equal(records.length, 1);
  const path = join(ws, 'cache/records', records[0]!);
  const rec = JSON.parse(readFileSync(path, 'utf8'));
  rec.outputs.f.path = `../${victim}/evil`;
  writeFileSync(path, JSON.stringify(rec));
  rmSync(join(ws, 'out'), { recursive: true });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['a'], 'the edited record is not served; the node recomputes');
  assert.equal(existsSync(join(dirname(ws), victim)), false, 'nothing was written outside the workspace');
  assert.equal(read(ws, 'out/a'), 'a\n');
});

test('kill -9 during a directory restore leaves no temp behind once the next run is done', async () => {
  const files = Array.from({ length: 4000 }, (_, i) => `f${i}`).join(' ');
  const ws = workspace({ 'dfwe.yaml': `version: 1\nstages:\n  d:\n    cmd: mkdir -p out/d && cd out/d && touch ${files}\n    outs: { o: out/d }\n` });
  assert.equal(dfwe(ws, ['run']).code, 0);
  let killedMidway = false;
  for (let attempt = 0; attempt < 10 && !killedMidway; attempt++) {
    rmSync(join(ws, 'out'), { recursive: true, force: true });
    const child = spawn(process.execPath, [BIN, 'run'], { cwd: ws, stdio: 'ignore', env: { ...process.env, CI: 'true' } });
    const exited = new Promise((r) => child.on('close', r));
    // Poll for the restore's temp directory and kill the engine the moment it shows.
    for (let done = false; !done; ) {
      done = child.exitCode !== null;
      const names = existsSync(join(ws, 'out')) ? readdirSync(join(ws, 'out')) : [];
      if (names.some((n) => n !== 'd')) {
        child.kill('SIGKILL');
        killedMidway = true;
        break;
      }
      await new Promise((r) => setImmediate(r));
    }
    await exited;
  }
  assert.ok(killedMidway, 'the kill came during a restore');
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(join(ws, 'out')), ['d'], 'only the output itself is left');
  assert.equal(readdirSync(join(ws, 'out/d')).length, 4000);
});
