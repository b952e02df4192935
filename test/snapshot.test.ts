import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dfwe, dfweTraced, ran, read, workspace } from './helpers.js';

const PIPELINE = `version: 1
stages:
  a:
    cmd: cat src/in.txt > \${{ outs.f }}
    deps: [src/in.txt]
    outs: { f: out/a/f }
  b:
    cmd: mkdir -p \${{ outs.d }} && cp \${{ stages.a.outs.f }} \${{ outs.d }}/x && ls data > \${{ outs.d }}/list
    deps: [data]
    outs: { d: out/b }
`;

/** A workspace whose sources are old enough to trust their stats, run once. */
function ranOnce(): string {
  const ws = workspace({ 'dfwe.yaml': PIPELINE, 'src/in.txt': 'one\n', 'data/1.txt': '1\n' });
  const old = new Date(Date.now() - 3600_000);
  for (const p of ['src/in.txt', 'data/1.txt', 'data', 'src']) utimesSync(join(ws, p), old, old);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  return ws;
}

/** `dfwe ARGS`, and whether it was answered from the snapshot (it then never loads the planner). */
function traced(ws: string, args: string[]): { code: number; stdout: string; stderr: string; fromSnapshot: boolean } {
  const r = dfweTraced(ws, args);
  return { ...r, fromSnapshot: !r.modules.some((m) => /\/dist\/src\/engine\/plan\.js$/.test(m)) };
}

test('a no-op after a run is told from the snapshot: status and run plan nothing', () => {
  const ws = ranOnce();
  const s = traced(ws, ['status']);
  assert.equal(s.code, 0, s.stderr);
  assert.ok(s.fromSnapshot, 'status used the snapshot');
  assert.match(s.stdout, /2 nodes: 2 cached, 0 will run/);
  const json = JSON.parse(traced(ws, ['status', '--json']).stdout);
  assert.deepEqual(json.nodes.map((n: { id: string; state: string }) => [n.id, n.state]), [['a', 'cached'], ['b', 'cached']]);
  const r = traced(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.fromSnapshot, 'run used the snapshot');
  assert.match(r.stderr, /2 nodes: 0 ran, 2 cached, 0 failed/);
  // What the snapshot cannot answer for goes the full way: forced nodes, bad options.
  assert.deepEqual(ran(dfwe(ws, ['run', '--force', 'a'])), ['a']);
  assert.match(dfwe(ws, ['run', '--jobs', '0']).stderr, /--jobs takes a whole number/);
});

test('the snapshot sees every change that makes a node run: sources, outputs, records, the pipeline', () => {
  const cases: [string, (ws: string) => void, RegExp][] = [
    ['a source dep edited', (ws) => appendFileSync(join(ws, 'src/in.txt'), 'two\n'), /will run +a +dep src\/in\.txt changed/],
    ['a file added to a directory dep', (ws) => writeFileSync(join(ws, 'data/2.txt'), '2\n'), /will run +b +dep data changed/],
    ['an output edited in place', (ws) => {
      chmodSync(join(ws, 'out/a/f'), 0o644);
      appendFileSync(join(ws, 'out/a/f'), 'edited\n');
    }, /will run +a .*modified in place/],
    ['a file removed from a directory output', (ws) => {
      chmodSync(join(ws, 'out/b'), 0o755);
      rmSync(join(ws, 'out/b/list'));
    }, /cached +b +cached; will restore its outputs/],
    ['an output removed', (ws) => rmSync(join(ws, 'out/a/f')), /cached +a +cached; will restore/],
    ['its record removed from the cache', (ws) => {
      for (const shard of readdirSync(join(ws, 'cache/records'))) rmSync(join(ws, 'cache/records', shard), { recursive: true });
    }, /will run +a/],
    ['the pipeline edited', (ws) => writeFileSync(join(ws, 'dfwe.yaml'), PIPELINE.replace('cat src/in.txt', 'cat  src/in.txt')), /will run +a +command changed/],
  ];
  for (const [what, change, expected] of cases) {
    const ws = ranOnce();
    assert.ok(traced(ws, ['status']).fromSnapshot, `${what}: the snapshot was there to use`);
    change(ws);
    const s = traced(ws, ['status']);
    assert.equal(s.code, 0, `${what}: ${s.stderr}`);
    assert.equal(s.fromSnapshot, false, `${what}: planned in full`);
    assert.match(s.stdout, expected, what);
    const r = dfwe(ws, ['run']);
    assert.equal(r.code, 0, `${what}: ${r.stderr}`);
    assert.equal(read(ws, 'out/b/x'), read(ws, 'src/in.txt'), what);
  }
});

test('a directory on the way to an output replaced by a symlink outside: the full plan says so', () => {
  const ws = ranOnce();
  assert.ok(traced(ws, ['status']).fromSnapshot);
  // Moved, not copied: the output file is the same inode, with the same stat, through the link.
  const elsewhere = mkdtempSync(join(tmpdir(), 'dfwe-elsewhere-'));
  renameSync(join(ws, 'out/a'), join(elsewhere, 'a'));
  symlinkSync(join(elsewhere, 'a'), join(ws, 'out/a'));
  const s = traced(ws, ['status']);
  assert.equal(s.fromSnapshot, false);
  assert.equal(s.code, 2, s.stdout);
  assert.match(s.stderr, /outside the workspace/);
});

test('edits replace the memos: one expansion memo and one snapshot per pipeline, however often it changes', () => {
  const ws = ranOnce();
  const text = PIPELINE;
  for (let i = 1; i <= 3; i++) {
    writeFileSync(join(ws, 'dfwe.yaml'), `${text}# edit ${i}\n`);
    assert.match(dfwe(ws, ['status']).stdout, /2 nodes: 2 cached, 0 will run/);
  }
  assert.equal(readdirSync(join(ws, 'cache/state/pipelines')).length, 1);
  assert.equal(readdirSync(join(ws, 'cache/state/snapshots')).length, 1);
  // Another variant (a param given) has memos of its own, beside the first.
  writeFileSync(join(ws, 'dfwe.yaml'), text.replace('version: 1\n', 'version: 1\nparams: { n: 1 }\n'));
  assert.equal(dfwe(ws, ['status', '--param', 'n=2']).code, 0);
  assert.equal(readdirSync(join(ws, 'cache/state/pipelines')).length, 2);
});
