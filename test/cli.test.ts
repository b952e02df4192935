import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, listFiles, ran, read, workspace, write } from './helpers.js';

const TWO = `version: 1
stages:
  make:
    cmd: mkdir -p out && echo made && echo data > out/x.txt
    outs: { f: out/x.txt }
  use:
    cmd: wc -c < \${{ stages.make.outs.f }} > out/n.txt
    outs: { n: out/n.txt }
`;

test('--dry-run shows the plan and runs nothing', () => {
  const ws = workspace({ 'dfwe.yaml': TWO });
  const r = dfwe(ws, ['run', '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 nodes: 0 cached, 2 will run/);
  assert.match(r.stdout, /will run\s+make\s+never run/);
  assert.match(r.stdout, /will run\s+use\s+upstream make will run/);
  assert.equal(existsSync(join(ws, 'out')), false);
  assert.deepEqual(listFiles(join(ws, 'cache/records')), []);
});

test('--dry-run says in what order a run would start the nodes, on which job slots and GPUs, and how long by their last runs', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  prep:
    cmd: sleep 0.4 && echo data > \${{ outs.d }}
    outs: { d: ~ }
  train:
    foreach: { seed: [1, 2, 3] }
    cmd: sleep 0.\${{ seed }} && wc -c < \${{ stages.prep.outs.d }} > \${{ outs.n }}
    outs: { n: ~ }
    resources: { gpu: 1 }
`,
  });
  const fresh = dfwe(ws, ['run', '-n', '-r', 'gpu=2', '-j', '2']);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stdout, /would start 4 nodes on 2 job slots/);
  assert.match(fresh.stdout, /no estimate: none of them has run before/);
  assert.equal(dfwe(ws, ['run', '-r', 'gpu=2', '-j', '2']).code, 0);
  // Every node runs again: prep's command changes, and train reads prep's output.
  write(ws, 'dfwe.yaml', read(ws, 'dfwe.yaml').replace('echo data', 'echo data2'));
  const cache = listFiles(join(ws, 'cache'));
  const r = dfwe(ws, ['run', '-n', '-v', '-r', 'gpu=2', '-j', '2']);
  assert.equal(r.code, 0, r.stderr);
  const starts = r.stdout.split('\n').filter((l) => /^ {2}\+/.test(l)).map((l) => l.replace(/\(last took [\d.]+s\)/, '(last)').replace(/\+ *[\d.]+s/, '+T').replace(/ +/g, ' ').trim());
  assert.deepEqual(starts, [
    '+T slot 0 prep (last)',
    '+T slot 0 gpu 0 train[seed=1] (last)',
    '+T slot 1 gpu 1 train[seed=2] (last)',
    // seed=1 ends first (0.1 s against 0.2 s): its slot and GPU are the ones free.
    '+T slot 0 gpu 0 train[seed=3] (last)',
  ]);
  const at = (id: string): number => Number(new RegExp(`\\+ *([\\d.]+)s .*${id.replace(/[[\]]/g, '\\$&')}`).exec(r.stdout)![1]);
  assert.ok(at('train[seed=1]') >= 0.4, 'the trainings start once prep would have ended, by its last duration');
  assert.equal(at('train[seed=1]'), at('train[seed=2]'));
  assert.ok(at('train[seed=3]') > at('train[seed=1]'), 'seed=3 waits for a GPU');
  assert.match(r.stdout, /\n {6}sleep 0\.3 && wc -c < out\/prep\/d > out\/train\/seed=3\/n\n/, '-v shows each command');
  assert.match(r.stdout, /about [\d.]+s in all, by the last durations of all 4/);
  assert.deepEqual(listFiles(join(ws, 'cache')).filter((f) => !f.startsWith('state/')), cache.filter((f) => !f.startsWith('state/')), 'nothing ran: no record, attempt or object written');
  assert.equal(read(ws, 'out/prep/d'), 'data\n');
});

test('status --json gives counts and a reason per node', () => {
  const ws = workspace({ 'dfwe.yaml': TWO });
  dfwe(ws, ['run']);
  const s = JSON.parse(dfwe(ws, ['status', '--json']).stdout);
  assert.deepEqual(s.counts, { cached: 2, run: 0, blocked: 0 });
  assert.equal(s.nodes[0].id, 'make');
  assert.match(s.nodes[0].execKey, /^[0-9a-f]{32}$/);
});

test('dag prints text, dot and mermaid', () => {
  const ws = workspace({ 'dfwe.yaml': TWO });
  assert.equal(dfwe(ws, ['dag']).stdout, 'make\nuse  ← make\n');
  assert.match(dfwe(ws, ['dag', '--format', 'dot']).stdout, /digraph dfwe \{[\s\S]*"make" -> "use";[\s\S]*\}/);
  assert.match(dfwe(ws, ['dag', '--format', 'mermaid']).stdout, /flowchart LR\n {2}n0\["make"\]\n {2}n1\["use"\]\n {2}n0 --> n1/);
  const bad = dfwe(ws, ['dag', '--format', 'png']);
  assert.equal(bad.code, 2);
});

test('show gives outputs, timings and the log', () => {
  const ws = workspace({ 'dfwe.yaml': TWO });
  dfwe(ws, ['run']);
  const r = dfwe(ws, ['show', 'make']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /state:\s+cached/);
  assert.match(r.stdout, /f: out\/x\.txt\s+\(file, 5 bytes, [0-9a-f]{12}\)/);
  assert.match(r.stdout, /\| made/);
  const j = JSON.parse(dfwe(ws, ['show', 'make', '--json']).stdout);
  assert.equal(j.record.outputs.f.size, 5);
  const missing = dfwe(ws, ['show', 'mak']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no node "mak".*\n.*did you mean: make/);
});

test('resource tokens: a GPU stage without a GPU is a located error; cpu tokens serialise heavy stages', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  train:\n    cmd: "true"\n    resources: { gpu: 1 }\n' });
  const r = dfwe(ws, ['run'], { CUDA_VISIBLE_DEVICES: '' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /dfwe\.yaml:3:3: error: stage "train" needs gpu: 1, but this run has 0/);
  assert.deepEqual(listFiles(ws), ['dfwe.yaml']);
  assert.equal(dfwe(ws, ['run', '--resource', 'gpu=1'], { CUDA_VISIBLE_DEVICES: '' }).code, 0);

  // Two stages that each take both cpu tokens of a --jobs 2 run never overlap.
  const heavy = (n: string): string => `  ${n}:\n    cmd: mkdir -p out && date +%s%N > out/${n}.start && sleep 0.3 && date +%s%N > out/${n}.end\n    outs: { s: out/${n}.start, e: out/${n}.end }\n    resources: { cpu: 2 }\n`;
  const ws2 = workspace({ 'dfwe.yaml': `version: 1\nstages:\n${heavy('h1')}${heavy('h2')}` });
  const r2 = dfwe(ws2, ['run', '--jobs', '2']);
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(ran(r2), ['h1', 'h2']);
  const t = (f: string): bigint => BigInt(read(ws2, f).trim());
  const [a, b] = t('out/h1.start') < t('out/h2.start') ? ['h1', 'h2'] : ['h2', 'h1'];
  assert.ok(t(`out/${a}.end`) <= t(`out/${b}.start`), 'the two cpu: 2 stages overlapped');
});

test('--param replaces a param as if the file said it: keys follow the value; unknown names are errors', () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nparams: { n: 2, tasks: [a] }\nstages:\n  count:\n    cmd: seq ${{ params.n }} > ${{ outs.f }}\n    outs: { f: out/count }\n  list:\n    cmd: printf \"%s|\" ${{ quote(params.tasks) }} > ${{ outs.f }}\n    outs: { f: out/list }\n',
  });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const r = dfwe(ws, ['run', '--param', 'n=3', '--param', 'tasks=[a, b c]']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['count', 'list']);
  assert.equal(read(ws, 'out/count'), '1\n2\n3\n');
  assert.equal(read(ws, 'out/list'), 'a|b c|');
  assert.deepEqual(ran(dfwe(ws, ['run', '--param', 'n=3', '--param', 'tasks=[a, b c]'])), [], 'the same values: all cached');
  assert.deepEqual(ran(dfwe(ws, ['run'])), [], "the file's own values again: cached from the first run");
  assert.equal(read(ws, 'out/count'), '1\n2\n');
  const bad = dfwe(ws, ['status', '--param', 'm=3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--param m: dfwe\.yaml has no param "m"; did you mean "n"\?/);
  assert.equal(dfwe(ws, ['status', '--param', 'n']).code, 2);
  assert.match(dfwe(ws, ['status', '--param', 'n=[1, 2']).stderr, /--param n: the value is not valid YAML/);
});

test('metrics --stage tells a node that ran without metrics (a cmd stage) from one that has not run', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nsweep: { n: [1, 2] }\nstages:\n  c:\n    cmd: echo ${{ n }} > ${{ outs.o }}\n    outs: { o: ~ }\n' });
  assert.equal(dfwe(ws, ['run', '--only', 'n=1']).code, 0);
  const r = dfwe(ws, ['metrics', '--stage', 'c']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^1 +\(ran; no metrics\)$/m);
  assert.match(r.stdout, /^2 +\(not run\)$/m);
  const json = JSON.parse(dfwe(ws, ['metrics', '--stage', 'c', '--json']).stdout);
  assert.deepEqual(json.nodes.map((n: { state: string }) => n.state), ['cached', 'not run']);
});

test('status of a large pipeline: a line per stage, --all for every node, and long upstream lists counted', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  leaf:
    foreach: { i: "\${{ range(300) }}" }
    cmd: echo \${{ i }} > \${{ outs.o }}
    outs: { o: ~ }
  total:
    deps: ["\${{ stages.leaf.outs.o }}"]
    cmd: cat out/leaf/*/o | wc -l > \${{ outs.o }}
    outs: { o: ~ }
`,
  });
  const r = dfwe(ws, ['status']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ {2}stage +nodes +cached +to do$/m);
  assert.match(r.stdout, /^ {2}leaf +300 +0 +300 {2}leaf\[i=0\]: never run \(and 299 more\)$/m);
  assert.match(r.stdout, /^ {2}total +1 +0 +1 {2}total: upstream leaf\[i=0\], leaf\[i=1\], leaf\[i=2\] and 297 more will run/m);
  assert.match(r.stdout, /301 nodes: a line per stage; --all for every node/);
  assert.ok(r.stdout.split('\n').length < 10);
  const all = dfwe(ws, ['status', '--all']);
  assert.equal(all.stdout.split('\n').filter((l) => /^ {2}will run /.test(l)).length, 301);
  assert.equal(JSON.parse(dfwe(ws, ['status', '--json']).stdout).nodes.length, 301, '--json has every node');
});
