import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { executors } from '../src/execute/executors/index.js';
import { locateProject, openProject, runtimeFor, type ProjectOptions } from '../src/project.js';
import { checkSnapshot, keepSnapshot, readSnapshot } from '../src/engine/snapshot.js';
import { readServed } from '../src/history/served-set.js';
import { servedPath } from '../src/history/run-log.js';
import { digestBytes } from '../src/util/hash.js';
import { openPartRun } from '../src/engine/part-run.js';
import { registry } from '../stages/index.js';
import { dfwe, dfweTraced, ran, read, workspace } from './helpers.js';

/*
 * A run after only sources changed opens the part of the project it needs (engine/part-run.ts):
 * what it may execute and the nodes whose outputs those read. Everything a user sees of it must
 * be what a run of the whole project gives: what ran, the results and their keys, the history,
 * the warnings (located in the file as it is now), the snapshot the next command is told from.
 */

const PIPELINE = `version: 1
stages:
  prep:
    cmd: cat src/base.txt notes.txt > \${{ outs.p }} && true 'prép, not ASCII (each node after it in the memo is at a byte offset, not a character offset)'
    deps: [src/base.txt]
    outs: { p: out/prep }
  ex:
    foreach: { i: [0, 1, 2, 3] }
    cmd: cat \${{ stages.prep.outs.p }} src/d\${{ i }}.txt > \${{ outs.e }} && ! grep -q boom \${{ outs.e }}
    deps: ["src/d\${{ i }}.txt"]
    outs: { e: ~ }
  ft:
    foreach: { i: [0, 1, 2, 3] }
    cmd: cat \${{ stages.ex.outs.e }} > \${{ outs.f }}
    outs: { f: ~ }
  other:
    cmd: cat notes.txt > \${{ outs.o }}
    outs: { o: out/other }
`;

const OLD = new Date(Date.now() - 3600_000);

/** A workspace that ran once, with a status after a comment edit (every line one down), as in the everyday loop. */
function ranAndEdited(): string {
  const files: Record<string, string> = { 'dfwe.yaml': PIPELINE, 'src/base.txt': 'base\n', 'notes.txt': 'notes\n' };
  for (let i = 0; i < 4; i++) files[`src/d${i}.txt`] = `${i}\n`;
  const ws = workspace(files);
  for (const p of [...Object.keys(files), 'src']) utimesSync(join(ws, p), OLD, OLD);
  assert.equal(dfwe(ws, ['run']).code, 0);
  writeFileSync(join(ws, 'dfwe.yaml'), `# the loop\n${PIPELINE}`);
  assert.match(dfwe(ws, ['status']).stdout, /10 nodes: 10 cached, 0 will run/);
  return ws;
}

/** Whether a run opened the whole project (the part's run never loads the targets' selection). */
const openedWhole = (r: { modules: string[] }): boolean => r.modules.some((m) => /\/dist\/src\/engine\/targets\.js$/.test(m));

interface StatusJson {
  nodes: { id: string; state: string; planKey: string; execKey: string }[];
}

const runFiles = (ws: string): string[] => readdirSync(join(ws, 'cache/runs')).filter((f) => f.endsWith('.jsonl'));

/** The history end line and served set of the run not among `before` (run ids name the second they started in: they do not sort by time). */
function newRun(ws: string, before: string[]): { end: { ran: number; cached: number; status: string }; served: [string, string, string, unknown, Record<string, string> | null][] } {
  const dir = join(ws, 'cache/runs');
  const runs = runFiles(ws).filter((f) => !before.includes(f));
  assert.equal(runs.length, 1);
  const lines = readFileSync(join(dir, runs[0]!), 'utf8').trim().split('\n');
  const end = JSON.parse(lines.at(-1)!) as { ran: number; cached: number; status: string; served: string };
  const served = (JSON.parse(readFileSync(join(dir, 'served', `${end.served}.json`), 'utf8')) as { nodes: [string, string, string, unknown, Record<string, string> | null][] }).nodes;
  return { end, served };
}

test('a run after a source change opens only what it reaches, and does what a run of the whole project does', () => {
  const part = ranAndEdited();
  const whole = ranAndEdited();
  for (const ws of [part, whole]) appendFileSync(join(ws, 'src/d1.txt'), 'more\n');
  const [partRuns, wholeRuns] = [runFiles(part), runFiles(whole)];
  const p = dfweTraced(part, ['run']);
  // -v lists every node: a run the snapshot cannot tell, which opens the whole project.
  const w = dfweTraced(whole, ['run', '-v']);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(w.code, 0, w.stderr);
  assert.ok(!openedWhole(p), 'the run opened only the part it needs');
  assert.ok(openedWhole(w), 'a run the snapshot cannot tell opens the whole project');
  // The status after the comment edit parsed the file and filed the memo's locations found again.
  assert.ok(!p.modules.some((m) => /\/node_modules\/yaml\//.test(m)), 'the run did not parse the pipeline file again');

  assert.deepEqual(ran(p), ['ex[i=1]', 'ft[i=1]']);
  assert.deepEqual(ran(w), ran(p));
  assert.match(p.stderr, /10 nodes: 2 ran, 8 cached, 0 failed, 0 skipped/);
  assert.equal(read(part, 'out/ft/i=1/f'), 'base\nnotes\n1\nmore\n');
  // The warnings of the pipeline, said as the whole project says them, where they are now (a line
  // down): other's too, a node the run does not reach.
  const warnings = (s: string): string[] => s.split('\n').filter((l) => / warning: /.test(l));
  assert.deepEqual(warnings(p.stderr), [
    'dfwe.yaml:5:10: warning: stage "prep" reads "notes.txt" (named in its cmd) but does not declare it: a change to it will not rerun the stage',
    'dfwe.yaml:18:10: warning: stage "other" reads "notes.txt" (named in its cmd) but does not declare it: a change to it will not rerun the stage',
  ]);
  assert.deepEqual(warnings(p.stderr), warnings(w.stderr));

  // Every node's keys, its history and served set are the whole project's.
  const keys = (ws: string) => (JSON.parse(dfwe(ws, ['status', '--json']).stdout) as StatusJson).nodes.map((n) => [n.id, n.state, n.planKey, n.execKey]);
  assert.deepEqual(keys(part), keys(whole));
  const [pr, wr] = [newRun(part, partRuns), newRun(whole, wholeRuns)];
  assert.deepEqual([pr.end.status, pr.end.ran, pr.end.cached], ['succeeded', 2, 8]);
  assert.deepEqual([wr.end.status, wr.end.ran, wr.end.cached], ['succeeded', 2, 8]);
  assert.equal(pr.served.length, 10);
  assert.deepEqual(pr.served, wr.served);

  // The snapshot was brought up to date: the next command is told from it, planning nothing.
  const next = dfweTraced(part, ['status']);
  assert.match(next.stdout, /10 nodes: 10 cached, 0 will run/);
  assert.ok(!next.modules.some((m) => /\/dist\/src\/engine\/plan\.js$/.test(m)), 'status used the snapshot');
});

test('a snapshot that names a served set written on one line (by an earlier dfwe) is carried over as one written a line an entry', () => {
  const ws = ranAndEdited();
  const options: ProjectOptions = { workspace: ws, stageTypes: registry, executors };
  const loc = locateProject(options);
  const snap = readSnapshot(loc, (b) => runtimeFor(b))!;
  const set = readServed(loc.store, snap.served)!;
  const oneLine = JSON.stringify(set);
  const digest = digestBytes(oneLine);
  writeFileSync(servedPath(loc.store, digest), oneLine);
  keepSnapshot(loc, { ...snap, served: digest });
  appendFileSync(join(ws, 'src/d1.txt'), 'more\n');
  const before = runFiles(ws);
  const r = dfweTraced(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!openedWhole(r), 'the run opened only the part it needs');
  assert.deepEqual(ran(r), ['ex[i=1]', 'ft[i=1]']);
  // Every node outside the part as the old set had it; the two that ran as they ran.
  const { served } = newRun(ws, before);
  const ranNow = (JSON.parse(dfwe(ws, ['status', '--json']).stdout) as StatusJson).nodes;
  assert.deepEqual(served.map((e) => e[0]), set.nodes.map((e) => e[0]));
  served.forEach((e, i) => {
    if (['ex[i=1]', 'ft[i=1]'].includes(e[0])) assert.equal(e[2], ranNow.find((n) => n.id === e[0])!.execKey, e[0]);
    else assert.deepEqual(e, set.nodes[i], e[0]);
  });
  assert.match(dfwe(ws, ['status']).stdout, /10 nodes: 10 cached, 0 will run/);
});

test('a stage that fails in a part-opened run fails as in a whole one; the snapshot does not claim it, and the fix runs it', () => {
  const ws = ranAndEdited();
  appendFileSync(join(ws, 'src/d2.txt'), 'boom\n');
  const r = dfweTraced(ws, ['run']);
  assert.ok(!openedWhole(r), 'the run opened only the part it needs');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^FAILED  ex\[i=2\]: command failed \(exit code 1\)$/m);
  assert.match(r.stderr, /10 nodes: 0 ran, 8 cached, 1 failed, 1 skipped/);
  assert.match(dfwe(ws, ['status']).stdout, /10 nodes: 8 cached, 2 will run/);
  writeFileSync(join(ws, 'src/d2.txt'), '2\nfine\n');
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['ex[i=2]', 'ft[i=2]']);
  assert.match(dfwe(ws, ['status']).stdout, /10 nodes: 10 cached, 0 will run/);
});

test('the part opened is what the plan reaches and the nodes whose outputs it reads; a change that reaches most of the pipeline opens it whole', async () => {
  const ws = ranAndEdited();
  appendFileSync(join(ws, 'src/d1.txt'), 'more\n');
  const options: ProjectOptions = { workspace: ws, stageTypes: registry, executors };
  const loc = locateProject(options);
  const check = checkSnapshot(loc, (b) => runtimeFor(b));
  assert.ok(check, 'only sources changed');
  const opened = await openPartRun(loc, check, options);
  assert.ok(opened);
  // ex[1] and ft[1] may run; prep's and other's warnings are said, located: they are decoded whole.
  assert.deepEqual(opened.project.graph.order.map((n) => n.id).sort(), ['ex[i=1]', 'ft[i=1]', 'other', 'prep']);
  assert.deepEqual(opened.project.graph.upstream.get('prep'), [], 'a node opened for what it says has no edges of its own');
  assert.equal(opened.project.part?.order.length, 10);
  assert.equal(opened.plan.served.size, 8, 'every other node served as the snapshot had it');
  // Each node decoded alone is the node the whole expansion gives.
  const whole = await openProject(options);
  for (const n of opened.project.graph.order) assert.deepEqual(n, whole.graph.byId.get(n.id), n.id);
  assert.deepEqual(opened.project.part?.node('ex[i=3]'), whole.graph.byId.get('ex[i=3]'), 'any other node decoded when asked');

  // No warning to say (notes.txt gone): of prep, whose output ex[1] reads, only its outputs.
  rmSync(join(ws, 'notes.txt'));
  const lean = await openPartRun(loc, check, options);
  assert.ok(lean);
  assert.deepEqual(lean.project.graph.order.map((n) => n.id).sort(), ['ex[i=1]', 'ft[i=1]']);
  assert.deepEqual([...(lean.project.graph.context ?? [])], [['prep', { p: 'out/prep' }]]);
  assert.deepEqual(lean.project.graph.producedDeps.get('ex[i=1]'), whole.graph.producedDeps.get('ex[i=1]'));
  assert.deepEqual(lean.project.graph.consumes.get('ex[i=1]'), whole.graph.consumes.get('ex[i=1]'));
  writeFileSync(join(ws, 'notes.txt'), 'notes\n');
  utimesSync(join(ws, 'notes.txt'), OLD, OLD);

  // The root's source: all but `other` would run, so the whole project is opened.
  writeFileSync(join(ws, 'src/base.txt'), 'other base\n');
  const root = dfweTraced(ws, ['run']);
  assert.equal(root.code, 0, root.stderr);
  assert.ok(openedWhole(root), 'opened whole');
  assert.deepEqual(ran(root), ['ex[i=0]', 'ex[i=1]', 'ex[i=2]', 'ex[i=3]', 'ft[i=0]', 'ft[i=1]', 'ft[i=2]', 'ft[i=3]', 'prep']);
});

test('a damaged expansion memo is expanded again, never a crash: whole or in part, a command says what it would have', () => {
  const ws = ranAndEdited();
  const dir = join(ws, 'cache/state/pipelines');
  const memo = join(dir, readdirSync(dir).find((f) => f.endsWith('.memo'))!);
  // Bytes in the middle of the nodes' text overwritten: the file still has its shape.
  const damaged = readFileSync(memo);
  damaged.fill(0x78, Math.floor(damaged.length / 2), Math.floor(damaged.length / 2) + 40);
  writeFileSync(memo, damaged);
  appendFileSync(join(ws, 'src/d3.txt'), 'more\n');
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['ex[i=3]', 'ft[i=3]']);
  writeFileSync(memo, damaged);
  const w = dfwe(ws, ['why', 'ft[i=3]']);
  assert.equal(w.code, 0, w.stderr);
  assert.doesNotMatch(w.stderr, /internal error/);
  // Written again whole: the next command uses it, expanding nothing.
  const again = dfweTraced(ws, ['why', 'ft[i=3]']);
  assert.equal(again.stdout, w.stdout);
  assert.ok(!again.modules.some((m) => /\/dist\/src\/pipeline\/expand\.js$/.test(m)), 'the memo was used');
});

test('an input replaced during a part-opened run is dealt with as a whole run deals with it, its producer decoded for it', () => {
  const files: Record<string, string> = {
    'dfwe.yaml': `version: 1
stages:
  prep:
    cmd: cat src/base.txt > \${{ outs.p }}
    deps: [src/base.txt]
    outs: { p: out/prep }
  swap:
    cmd: cat src/z.txt > \${{ outs.z }} && if grep -q swap src/z.txt; then printf evil > out/prep.new && mv out/prep.new out/prep; fi
    deps: [src/z.txt]
    outs: { z: out/z }
  ex:
    foreach: { i: [0, 1, 2, 3, 4, 5] }
    cmd: cat \${{ stages.prep.outs.p }} src/d\${{ i }}.txt > \${{ outs.e }}
    deps: ["src/d\${{ i }}.txt"]
    outs: { e: ~ }
`,
    'src/base.txt': 'base\n',
    'src/z.txt': 'z\n',
  };
  for (let i = 0; i < 6; i++) files[`src/d${i}.txt`] = `${i}\n`;
  const twins = [workspace(files), workspace(files)];
  for (const ws of twins) {
    for (const p of [...Object.keys(files), 'src']) utimesSync(join(ws, p), OLD, OLD);
    assert.equal(dfwe(ws, ['run']).code, 0);
    assert.match(dfwe(ws, ['status']).stdout, /8 nodes: 8 cached/);
    // swap runs first (one job slot, pipeline order) and replaces prep's output by rename; ex[1],
    // which reads it, finds it replaced: put back from the cache where dfwe may, else refused.
    writeFileSync(join(ws, 'src/z.txt'), 'swap\n');
    appendFileSync(join(ws, 'src/d1.txt'), 'more\n');
  }
  const part = dfweTraced(twins[0]!, ['run', '--jobs', '1']);
  const whole = dfweTraced(twins[1]!, ['run', '--jobs', '1', '-v']);
  assert.ok(!openedWhole(part), 'the run opened only the part it needs: prep, outside it, was decoded to restore it');
  assert.ok(openedWhole(whole));
  assert.equal(part.code, whole.code);
  const failed = (s: string): string[] => s.split('\n').filter((l) => l.startsWith('FAILED'));
  assert.deepEqual(failed(part.stderr), ['FAILED  ex[i=1]: output "p" (out/prep) already exists and was not made by dfwe: dfwe replaces an output when its stage runs, so it does not touch this one. Move it away (or delete it), then run again']);
  assert.deepEqual(failed(part.stderr), failed(whole.stderr));
  assert.equal(read(twins[0]!, 'out/prep'), 'evil', "a file dfwe did not make is not replaced");
});
