import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RawPipeline } from '../src/pipeline/types.js';
import type { StageType } from '../src/stage-type.js';
import { dfwe, ran, read, workspace, write } from './helpers.js';

const PIPELINE = `version: 1
name: t
params:
  n: 3
  word: hi
stages:
  a:
    cmd: mkdir -p out && seq \${{ params.n }} > out/a.txt
    outs: { f: out/a.txt }
  b:
    cmd: sed 's/^/\${{ params.word }} /' \${{ stages.a.outs.f }} > out/b.txt
    outs: { f: out/b.txt }
  c:
    cmd: wc -l < \${{ stages.a.outs.f }} > out/c.txt
    outs: { f: out/c.txt }
  d:
    cmd: cat \${{ stages.b.outs.f }} \${{ stages.c.outs.f }} > out/d.txt
    outs: { f: out/d.txt }
`;

test('first run runs everything; second run runs nothing', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  const r1 = dfwe(ws, ['run']);
  assert.equal(r1.code, 0, r1.stderr);
  assert.deepEqual(ran(r1), ['a', 'b', 'c', 'd']);
  assert.equal(read(ws, 'out/d.txt'), 'hi 1\nhi 2\nhi 3\n3\n');
  const r2 = dfwe(ws, ['run']);
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(ran(r2), []);
  assert.match(r2.stderr, /0 ran, 4 cached/);
});

test('editing one param reruns the stages that read it and their descendants only', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', PIPELINE.replace('word: hi', 'word: yo'));
  const status = JSON.parse(dfwe(ws, ['status', '--json']).stdout);
  assert.deepEqual(status.nodes.map((n: { id: string; state: string }) => `${n.id}:${n.state}`), ['a:cached', 'b:run', 'c:cached', 'd:run']);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['b', 'd']);
  assert.equal(read(ws, 'out/d.txt'), 'yo 1\nyo 2\nyo 3\n3\n');
});

test('an upstream that reruns with identical bytes leaves its descendants cached (early cutoff)', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(ws, ['run']).code, 0);
  // Same output, different command: a reruns, b/c/d must not.
  write(ws, 'dfwe.yaml', PIPELINE.replace('seq ${{ params.n }} > out/a.txt', 'seq 1 ${{ params.n }} > out/a.txt'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['a']);
});

test('early cutoff is per output: a consumer reruns only when an output it reads changes', () => {
  const two = (stamp: string) => `version: 1
stages:
  a:
    cmd: echo model > \${{ outs.model }}; echo took ${stamp} ms > \${{ outs.timings }}
    outs: { model: out/model, timings: out/timings }
  score:
    cmd: cat \${{ stages.a.outs.model }} > \${{ outs.s }}
    outs: { s: out/score }
  report:
    cmd: cat \${{ stages.a.outs.timings }} > \${{ outs.r }}
    outs: { r: out/report }
  both:
    cmd: cat out/model out/timings > \${{ outs.b }}
    deps: [out/model, out/timings]
    outs: { b: out/both }
`;
  const ws = workspace({ 'dfwe.yaml': two('12') });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', two('15'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  // The model came out identical: only what reads the timings (by expression or dep path) reruns.
  assert.deepEqual(ran(r), ['a', 'both', 'report']);
});

test('comments and key order do not change any key', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const reordered = `# a comment
name: t
version: 1   # trailing comment
stages:
  d:
    outs: { f: out/d.txt }
    cmd: cat \${{ stages.b.outs.f }} \${{ stages.c.outs.f }} > out/d.txt
  c:
    outs: { f: out/c.txt }
    cmd: wc -l < \${{ stages.a.outs.f }} > out/c.txt
  b:
    cmd: sed 's/^/\${{ params.word }} /' \${{ stages.a.outs.f }} > out/b.txt
    outs:
      f: out/b.txt
  a:
    # the source
    cmd: mkdir -p out && seq \${{ params.n }} > out/a.txt
    outs: { f: out/a.txt }
params:
  word: hi
  n: 3
`;
  write(ws, 'dfwe.yaml', reordered);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), []);
});

test('a changed dep file reruns its consumer; a dep that another stage writes is an edge', () => {
  const ws = workspace({
    'data/in.txt': 'one\n',
    'dfwe.yaml': `version: 1
stages:
  copy:
    cmd: mkdir -p out && cp data/in.txt out/copy.txt
    deps: [data/in.txt]
    outs: { f: out/copy.txt }
  upper:
    cmd: tr a-z A-Z < out/copy.txt > out/upper.txt
    deps: [out/copy.txt]
    outs: { f: out/upper.txt }
  other:
    cmd: echo other > out/other.txt
    outs: { f: out/other.txt }
`,
  });
  assert.equal(dfwe(ws, ['run']).code, 0);
  assert.equal(read(ws, 'out/upper.txt'), 'ONE\n');
  write(ws, 'data/in.txt', 'two\n');
  const why = dfwe(ws, ['why', 'copy']);
  assert.match(why.stdout, /dep data\/in\.txt changed/);
  const r = dfwe(ws, ['run']);
  assert.deepEqual(ran(r), ['copy', 'upper']);
  assert.equal(read(ws, 'out/upper.txt'), 'TWO\n');
});

test('why names the param that changed, with before and after', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', PIPELINE.replace('n: 3', 'n: 4'));
  const r = dfwe(ws, ['why', 'a']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /a will run: param n changed\n/, 'one edit, said once: not also as the command it changed');
  assert.match(r.stdout, /before: 3\n\s+now:\s+4/);
  const d = dfwe(ws, ['why', 'd']);
  assert.match(d.stdout, /d will run: upstream b, c will run/);
  assert.match(d.stdout, /a will run: param n changed/);
  // A command edited beside the param is still said.
  write(ws, 'dfwe.yaml', PIPELINE.replace('n: 3', 'n: 4').replace('seq ', 'seq  '));
  assert.match(dfwe(ws, ['why', 'a']).stdout, /a will run: param n changed; command changed/);
  const cached = dfwe(ws, ['why', 'a', '--cache', 'elsewhere']);
  assert.match(cached.stdout, /a will run: never run/);
});

test('--force reruns one node; replaced workspace outputs are restored from the cache', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const f = dfwe(ws, ['run', '--force', 'b']);
  assert.deepEqual(ran(f), ['b']);
  rmSync(join(ws, 'out/d.txt'));
  const r = dfwe(ws, ['run']);
  assert.deepEqual(ran(r), []);
  assert.match(r.stderr, /cached\s+d \(restored into the workspace\)/);
  assert.equal(read(ws, 'out/d.txt'), 'hi 1\nhi 2\nhi 3\n3\n');
  // A file the user put there instead is theirs: not overwritten (repro 2 of issue 23).
  rmSync(join(ws, 'out/d.txt'));
  write(ws, 'out/d.txt', 'replaced by hand\n');
  const mine = dfwe(ws, ['run']);
  assert.equal(mine.code, 1);
  assert.match(mine.stderr, /FAILED\s+d: output "f" \(out\/d\.txt\) already exists and was not made by dfwe/);
  assert.equal(read(ws, 'out/d.txt'), 'replaced by hand\n');
});

test('an output edited in place (as root, through the hardlink) is caught: quarantined and recomputed', () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(ws, ['run']).code, 0);
  // Root ignores the read-only bit, so this write reaches the cache object itself.
  writeFileSync(join(ws, 'out/b.txt'), 'edited in place\n');
  const status = JSON.parse(dfwe(ws, ['status', '--json']).stdout);
  const b = status.nodes.find((n: { id: string }) => n.id === 'b');
  assert.equal(b.state, 'run');
  assert.match(b.reason, /modified in place/);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['b']);
  assert.equal(read(ws, 'out/b.txt'), 'hi 1\nhi 2\nhi 3\n');
  assert.equal(read(ws, 'out/d.txt'), 'hi 1\nhi 2\nhi 3\n3\n');
  assert.equal(readdirSync(join(ws, 'cache/quarantine')).length, 1);
});

test('a failed node shows its log, blocks its descendants, and a fixed rerun resumes', () => {
  const bad = PIPELINE.replace("wc -l < ${{ stages.a.outs.f }} > out/c.txt", 'echo boom-from-c >&2; exit 3');
  const ws = workspace({ 'dfwe.yaml': bad });
  const r = dfwe(ws, ['run', '--jobs', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /FAILED\s+c: command failed \(exit code 3\)/);
  assert.match(r.stderr, /\| boom-from-c/);
  assert.match(r.stderr, /skip\s+d: upstream c failed/);
  const show = dfwe(ws, ['show', 'c']);
  assert.match(show.stdout, /last attempt failed/);
  assert.match(show.stdout, /boom-from-c/);
  write(ws, 'dfwe.yaml', PIPELINE);
  const r2 = dfwe(ws, ['run']);
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(ran(r2), ['c', 'd']);
});

test('without --keep-going a failure stops new work; with it independent branches finish', () => {
  const p = `version: 1
stages:
  fail:
    cmd: exit 1
  later:
    cmd: mkdir -p out && echo ok > out/later.txt
    outs: { f: out/later.txt }
`;
  const ws = workspace({ 'dfwe.yaml': p });
  const r = dfwe(ws, ['run', '--jobs', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /skip\s+later: not started/);
  const k = dfwe(ws, ['run', '--jobs', '1', '--keep-going']);
  assert.equal(k.code, 1);
  assert.deepEqual(ran(k), ['fail', 'later']);
  assert.equal(read(ws, 'out/later.txt'), 'ok\n');
});

test('a command that does not write a declared output fails with that output named', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  lazy:\n    cmd: "true"\n    outs: { model: out/model.bin }\n' });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /lazy: did not write its declared output "model" \(out\/model\.bin\)/);
});

test('an empty directory in a directory output is part of its digest: its consumer reruns when it goes', () => {
  const yaml = (mk: string): string => `version: 1
stages:
  d:
    cmd: mkdir -p out/d ${mk} && echo x > out/d/x
    outs: { o: out/d }
  list:
    cmd: (cd \${{ stages.d.outs.o }} && find . | sort) > \${{ outs.o }}
    outs: { o: out/list }
`;
  const ws = workspace({ 'dfwe.yaml': yaml('out/d/empty') });
  assert.equal(dfwe(ws, ['run']).code, 0);
  assert.match(read(ws, 'out/list'), /\.\/empty/);
  write(ws, 'dfwe.yaml', yaml(''));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['d', 'list'], 'the files are the same, the directory is not');
  assert.doesNotMatch(read(ws, 'out/list'), /empty/);
});

test("a built-in stage's parameter defaults are filled in before keying: a default changed in code reruns it", async () => {
  const { parsePipeline } = await import('../src/pipeline/load.js');
  const { expandPipeline } = await import('../src/pipeline/expand.js');
  const { fingerprint, planKeyOf } = await import('../src/keys/fingerprint.js');
  const toy = (lr: number): StageType => ({
    name: 'toy', version: 1, description: 'a stage with a default',
    schema: { type: 'object', additionalProperties: false, properties: { lr: { type: 'number', default: lr }, tasks: { type: 'array', items: { type: 'string' } } } },
    outputs: () => ({ o: 'file' }),
    run: async () => undefined,
  });
  const keyed = (lr: number): { params: Record<string, unknown>; key: string } => {
    const { source, data } = parsePipeline('version: 1\nstages:\n  t: { uses: toy, with: { tasks: [a] } }\n', 'p.yaml');
    const node = expandPipeline(data as RawPipeline, source, new Map([['toy', toy(lr)]])).nodes[0]!;
    return { params: node.params, key: planKeyOf(fingerprint(node, {}, {}, undefined)) };
  };
  assert.deepEqual(keyed(0.01).params, { lr: 0.01, tasks: ['a'] });
  assert.notEqual(keyed(0.01).key, keyed(0.02).key);
  // And the real stage types: what `expand --json` shows is what the node is keyed on.
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  data: { uses: prepare-data, with: { source: synthetic } }\n' });
  const node = JSON.parse(dfwe(ws, ['expand', '--json']).stdout).nodes[0];
  assert.deepEqual(node.with, { source: 'synthetic', seed: 0, scenes: 1500, few_shot: true });
});

test('why, after results were restored from the cache, compares with the record in use', () => {
  const yaml = (v: number, w = 1): string => `version: 1\nparams: { v: ${v}, w: ${w} }\nstages:\n  a:\n    cmd: echo \${{ params.v }} \${{ params.w }} > out/a\n    outs: { f: out/a }\n`;
  const ws = workspace({ 'dfwe.yaml': yaml(1) });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', yaml(2));
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', yaml(1));
  const back = dfwe(ws, ['run']);
  assert.match(back.stderr, /cached +a \(restored into the workspace\)/);
  // Now only w changes: v is as in the record in use (1), not as in the last run (2).
  write(ws, 'dfwe.yaml', yaml(1, 5));
  const why = dfwe(ws, ['why', 'a']).stdout;
  assert.match(why, /param w changed/);
  assert.doesNotMatch(why, /param v/, why);
});
