import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, ran, REPO, workspace, write } from './helpers.js';

/** The DFWE shape with trivial commands: n+2 experts per member, finetunes, one merge. */
function dfweShape(tasks: string[]): string {
  return `version: 1
params:
  tasks: [${tasks.join(', ')}]
sweep:
  target: \${{ params.tasks }}
  sources: \${{ combinations(params.tasks.filter(t, t != target), 3) }}
stages:
  base:
    cmd: mkdir -p out && echo base > \${{ outs.model }}
    outs: { model: out/base.txt }
  expert:
    foreach:
      tasks: \${{ [[target], [target] + sources] + sources.map(s, [s]) }}
    # multi-task sets stop early on the target's dev metric; a single task on its own
    cmd: >-
      echo "\${{ tasks }} stop-on=\${{ size(tasks) > 1 ? target : tasks[0] }}" | cat - \${{ stages.base.outs.model }} > \${{ outs.model }}
    outs: { model: ~ }
  finetune:
    foreach:
      tasks: \${{ [[target], [target] + sources] + sources.map(s, [s]) }}
    cmd: cat \${{ stages.expert.outs.model }} > \${{ outs.model }} && echo "on \${{ target }}" >> \${{ outs.model }}
    outs: { model: ~ }
  merge:
    cmd: cat \${{ stages.finetune.outs.model }} > \${{ outs.model }}
    outs: { model: ~ }
`;
}

const SEVEN = ['t1', 't2', 't3', 't4', 't5', 't6', 't7'];

interface Expanded {
  members: number;
  instances: number;
  nodes: { id: string; stage: string; vars: Record<string, unknown>; members: number }[];
}

test('7 tasks × every 3-subset of the other 6: 140 members plan exactly the distinct expert sets', () => {
  const ws = workspace({ 'dfwe.yaml': dfweShape(SEVEN) });
  const r = dfwe(ws, ['expand', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const x = JSON.parse(r.stdout) as Expanded;
  assert.equal(x.members, 140);
  const experts = x.nodes.filter((n) => n.stage === 'expert');
  const single = experts.filter((n) => (n.vars.tasks as string[]).length === 1);
  const multi = experts.filter((n) => (n.vars.tasks as string[]).length === 4);
  assert.equal(single.length, 7, 'one expert per single task, shared by every member that needs it');
  assert.equal(multi.length, 140, 'one {t} ∪ S expert per member (it stops early on t)');
  assert.equal(experts.length, 147);
  // The expert on {t2} alone serves target t2 (20 members) and every member with t2 among
  // its sources (6 targets × 10 source sets): 80.
  const t2 = experts.find((n) => n.id === 'expert[tasks=t2]')!;
  assert.equal(t2.members, 80);
  assert.deepEqual(Object.keys(t2.vars), ['tasks'], 'a single-task expert does not depend on the target');
  assert.ok(multi.every((n) => /^expert\[target=t\d,tasks=t\d\+t\d\+t\d\+t\d\]$/.test(n.id)));
  // Finetunes: per target 1 ({t}) + 20 ({t} ∪ S) + 6 ({s}); merges: one per member.
  assert.equal(x.nodes.filter((n) => n.stage === 'finetune').length, 7 * 27);
  assert.equal(x.nodes.filter((n) => n.stage === 'merge').length, 140);
  assert.equal(x.nodes.find((n) => n.id === 'base')!.members, 140);
  assert.equal(x.instances, 140 * (1 + 5 + 5 + 1));
  const status = dfwe(ws, ['status']);
  assert.match(status.stdout, /sweep: 140 members, 1680 stage instances → 477 nodes \(1203 shared\)/);
});

test('a sweep runs every node once; adding an 8th task runs only the new nodes', () => {
  const ws = workspace({ 'dfwe.yaml': dfweShape(SEVEN) });
  const first = dfwe(ws, ['run']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(ran(first).length, 477);
  const merged = readFileSync(join(ws, 'out/merge/sources=t2+t3+t4,target=t1/model'), 'utf8');
  assert.match(merged, /^t1 stop-on=t1\nbase\non t1\n/);
  assert.match(merged, /t1 t2 t3 t4 stop-on=t1/);

  write(ws, 'dfwe.yaml', dfweShape([...SEVEN, 't8']));
  const second = dfwe(ws, ['run']);
  assert.equal(second.code, 0, second.stderr);
  const again = ran(second);
  assert.ok(again.length > 0);
  assert.ok(again.every((id) => id.includes('t8')), `a node without t8 ran again: ${again.find((id) => !id.includes('t8'))}`);
  const all = JSON.parse(dfwe(ws, ['expand', '--json']).stdout) as Expanded;
  assert.equal(again.length, all.nodes.filter((n) => n.id.includes('t8')).length, 'every new node ran');
  assert.equal(all.members, 8 * 35);
});

test('--only runs part of a sweep; node ids name only the variables a node reads', () => {
  const ws = workspace({ 'dfwe.yaml': dfweShape(SEVEN) });
  const r = dfwe(ws, ['run', '--only', 'target=t3', '--only', 'sources=t1+t2+t4']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), [
    'base',
    'expert[target=t3,tasks=t1+t2+t3+t4]', 'expert[tasks=t1]', 'expert[tasks=t2]', 'expert[tasks=t3]', 'expert[tasks=t4]',
    'finetune[target=t3,tasks=t1+t2+t3+t4]', 'finetune[target=t3,tasks=t1]', 'finetune[target=t3,tasks=t2]', 'finetune[target=t3,tasks=t3]', 'finetune[target=t3,tasks=t4]',
    'merge[sources=t1+t2+t4,target=t3]',
  ]);
  const bad = dfwe(ws, ['status', '--only', 'targt=t3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"targt" is not a sweep variable; did you mean "target"\?/);
});

test('sweep and foreach errors are located', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nsweep:\n  n: ${{ 3 }}\nstages:\n  a:\n    foreach: { k: "${{ range(n) }}" }\n    cmd: echo ${{ k }}\n' });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /dfwe\.yaml:3:6: error: sweep variable "n" must be a list \(its values\), not 3/);
  const y = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    foreach: { k: ${{ range(2) }} }\n    cmd: echo\n' });
  assert.match(dfwe(y, ['run']).stderr, /hint: quote a value that holds \$\{\{ … \}\} inside \{ \} or \[ \]/);
  const w = workspace({ 'dfwe.yaml': 'version: 1\nsweep:\n  n: [1, 2]\nstages:\n  a:\n    foreach: { k: [x] }\n    cmd: echo ${{ k }} ${{ nn }}\n' });
  const e = dfwe(w, ['run']);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /dfwe\.yaml:7:28: error: expression: unknown variable "nn"; did you mean "n"\?/);
  const clash = workspace({ 'dfwe.yaml': 'version: 1\nsweep:\n  n: [1, 2]\nstages:\n  a:\n    cmd: echo ${{ n }} > x.txt\n    outs: { f: x.txt }\n' });
  assert.match(dfwe(clash, ['run']).stderr, /output "x.txt" of stage "a\[n=2\]" overlaps output "x.txt" of stage "a\[n=1\]"/);
});

test('pipelines/sweep.yaml: 140 members share one dataset, vocabulary and base, and 147 experts', () => {
  const ws = workspace();
  const x = JSON.parse(dfwe(ws, ['expand', '--json', join(REPO, 'pipelines/sweep.yaml')]).stdout) as Expanded;
  assert.equal(x.members, 140);
  const count = (stage: string): number => x.nodes.filter((n) => n.stage === stage).length;
  assert.deepEqual(['data', 'vocab', 'base', 'expert', 'finetune', 'interpolate', 'baseline', 'test_dfwe'].map(count), [1, 1, 1, 147, 189, 140, 7, 140]);
  const m = dfwe(ws, ['metrics', join(REPO, 'pipelines/sweep.yaml')]);
  assert.match(m.stdout, /\| task +\| baseline \| DFWE \(best\) \| delta \(best\) \| delta \(mean\) \| source sets \|/);
  assert.match(m.stdout, /\(140 of 140 comparisons not run yet: dfwe run\)/);
});

test('pipelines/friends.yaml: 7 targets with hand-chosen sources share single-task experts', () => {
  const ws = workspace();
  const x = JSON.parse(dfwe(ws, ['expand', '--json', join(REPO, 'pipelines/friends.yaml')]).stdout) as Expanded;
  assert.equal(x.members, 7);
  const experts = x.nodes.filter((n) => n.stage === 'expert');
  assert.equal(experts.length, 14, 'one expert per single task (shared), one per {t} ∪ S');
  // Its own target, and a source for the six others.
  assert.equal(x.nodes.find((n) => n.id === 'expert[tasks=character_identification]')!.members, 7);
  assert.equal(x.nodes.filter((n) => n.stage === 'finetune').length, 35);
});

test('pipelines/friends-sweep.yaml: every 3-subset of sources for each of the 7 Friends targets', () => {
  const ws = workspace();
  const x = JSON.parse(dfwe(ws, ['expand', '--json', join(REPO, 'pipelines/friends-sweep.yaml')]).stdout) as Expanded;
  assert.equal(x.members, 140);
  assert.equal(x.nodes.filter((n) => n.stage === 'expert').length, 147);
});

test('references pair the right instances among 20,000: by every shared foreach variable, or all of them', async () => {
  const { parsePipeline } = await import('../src/pipeline/load.js');
  const { expandPipeline } = await import('../src/pipeline/expand.js');
  const { registry } = await import('../stages/index.js');
  const text = `version: 1
stages:
  a:
    foreach: { i: "\${{ range(100) }}", j: "\${{ range(200) }}" }
    cmd: echo \${{ i }} \${{ j }} > \${{ outs.o }}
    outs: { o: ~ }
  b:
    foreach: { i: "\${{ range(100) }}", j: "\${{ range(200) }}" }
    cmd: cat \${{ stages.a.outs.o }} > \${{ outs.o }}
    outs: { o: ~ }
  byI:
    foreach: { i: "\${{ range(100) }}" }
    cmd: cat \${{ stages.b.outs.o }} > \${{ outs.o }}
    outs: { o: ~ }
  all:
    cmd: cat \${{ stages.byI.outs.o }} > \${{ outs.o }}
    outs: { o: ~ }
`;
  const { source, data } = parsePipeline(text, 'p.yaml');
  const { nodes } = expandPipeline(data as never, source, registry);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  assert.equal(nodes.length, 100 * 200 * 2 + 100 + 1);
  for (const [i, j] of [[0, 0], [37, 199], [99, 5]]) {
    const b = byId.get(`b[i=${i},j=${j}]`)!;
    assert.equal(b.command, `cat ${byId.get(`a[i=${i},j=${j}]`)!.outs.o} > ${b.outs.o}`, 'b reads the a of its own i and j');
    assert.deepEqual(b.refs, [`a[i=${i},j=${j}]`]);
  }
  const byI = byId.get('byI[i=42]')!;
  assert.equal(byI.refs.length, 200, 'byI reads the b of its i, for every j');
  assert.ok(byI.refs.every((r) => r.startsWith('b[i=42,')), byI.refs.slice(0, 3).join());
  assert.equal(byI.command, `cat ${Array.from({ length: 200 }, (_, j) => byId.get(`b[i=42,j=${j}]`)!.outs.o).join(' ')} > ${byI.outs.o}`, 'in foreach order');
  assert.equal(byId.get('all')!.refs.length, 100);
});
