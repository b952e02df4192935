import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, safetensorsBytes, workspace, write } from './helpers.js';

/*
 * The smaller findings of issue 24's newcomer, each as it was seen: groups that match nothing,
 * a path said twice, a scorer's loading chatter shown as run output, an unknown output name
 * without a suggestion, and a grouped search's weights labelled "model 6 … model 15".
 */

/** A safetensors file of F32 tensors, one per name. */
function model(path: string, tensors: Record<string, number[]>): void {
  writeFileSync(path, safetensorsBytes(Object.fromEntries(Object.entries(tensors).map(([n, v]) => [n, ['F32', v] as ['F32', number[]]]))));
}

// A scorer server that loads noisily (on stderr) and scores every candidate alike.
const SERVER = 'import json, sys\nprint("Loading checkpoint shards: 100%", file=sys.stderr, flush=True)\nfor line in sys.stdin:\n    print(json.dumps({"score": 1.0}), flush=True)\n';

function searchWorkspace(groups: string): string {
  const ws = workspace({ 'serve.py': SERVER });
  model(join(ws, 'a.safetensors'), { 'enc.w': [1, 2], head: [1] });
  model(join(ws, 'b.safetensors'), { 'enc.w': [3, 4], head: [2] });
  write(ws, 'dfwe.yaml', `version: 1
stages:
  search:
    uses: merge-search
    deps: [serve.py]
    with: { models: [a.safetensors, b.safetensors], groups: ${groups}, max_evals: 4, score_server: python3 serve.py }
`);
  return ws;
}

test('a group that holds no tensor is an error, as an include matching nothing is', () => {
  const ws = searchWorkspace("['enc.*', 'enc.w', 'decoder.*']");
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /groups "enc\.w", "decoder\.\*" match no merged tensor of a\.safetensors \(a tensor goes to the first group it matches\)/);
});

test("a scorer's stderr goes to the node's log, not to the run's output; a grouped search's weights are labelled by group and model", () => {
  const ws = searchWorkspace("['enc.*']");
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /Loading checkpoint shards/);
  assert.match(dfwe(ws, ['show', 'search', '--log']).stdout, /score: Loading checkpoint shards: 100%/);
  assert.match(dfwe(ws, ['run', '-v', '--force', 'search']).stderr, /search: score: Loading checkpoint shards/, '-v shows it');
  assert.equal(dfwe(ws, ['report', '-o', 'r.html']).code, 0);
  const page = readFileSync(join(ws, 'r.html'), 'utf8');
  for (const label of ['enc.*: a.safetensors', 'enc.*: b.safetensors', '(other tensors): a.safetensors', '(other tensors): b.safetensors']) {
    assert.ok(page.includes(`<code>${label}</code>`), label);
  }
  assert.doesNotMatch(page, /<code>model \d+<\/code>/);
});

test('a missing tensor names each model once; an unknown output name gets a suggestion, every one at once', () => {
  const ws = workspace();
  model(join(ws, 'a.safetensors'), { w: [1], extra: [2] });
  model(join(ws, 'b.safetensors'), { w: [3] });
  write(ws, 'dfwe.yaml', `version: 1\nstages:\n  m:\n    uses: merge\n    with: { models: [a.safetensors, ${join(ws, 'b.safetensors')}] }\n`);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 2, 'an absolute path in the workspace is named relative, first');
  // Model directories, as Hugging Face writes them: said once each, not also as an absolute path.
  for (const [dir, t] of [['da', { w: [1], extra: [2] }], ['db', { w: [3] }]] as [string, Record<string, number[]>][]) {
    write(ws, `models/${dir}/config.json`, '{}');
    model(join(ws, 'models', dir, 'model.safetensors'), t);
  }
  write(ws, 'dfwe.yaml', 'version: 1\nstages:\n  m:\n    uses: merge\n    with: { models: [models/da, models/db] }\n');
  const missing = dfwe(ws, ['run']);
  assert.match(missing.stderr, /tensor "extra" is in models\/da but not in models\/db: merged models must share one architecture/);
  assert.doesNotMatch(missing.stderr, /models\/db \(/);

  write(ws, 'dfwe.yaml', `version: 1
stages:
  train:
    cmd: echo m > \${{ outs.model }}
    outs: { model: ~ }
  a:
    cmd: cat \${{ stages.train.outs.modle }} > \${{ outs.o }}
    outs: { o: ~ }
  b:
    cmd: cat \${{ stages.train.outs.weights }} > \${{ outs.o }}
    outs: { o: ~ }
`);
  const bad = dfwe(ws, ['status']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /dfwe\.yaml:7:10: error: stage "train" has no output "modle"; did you mean "model"\?/);
  assert.match(bad.stderr, /dfwe\.yaml:10:10: error: stage "train" has no output "weights"[\s\S]*hint: its outputs: model/);
});

test('dfwe runs lists no-op runs only with --noops, and says which source files a run saw edited', async () => {
  const ws = workspace({ 'in.txt': '1\n', 'lib.py': 'x\n', 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: cat in.txt lib.py > o.txt\n    deps: [in.txt, lib.py]\n    outs: { o: o.txt }\n' });
  assert.equal(dfwe(ws, ['run']).code, 0);
  // Past the racy-clean window, the next ones are no-ops told from the snapshot (which record no sources).
  await new Promise((r) => setTimeout(r, 2100));
  for (let i = 0; i < 3; i++) assert.deepEqual(dfwe(ws, ['run']).code, 0);
  write(ws, 'in.txt', '2\n');
  write(ws, 'lib.py', 'y\n');
  assert.equal(dfwe(ws, ['run']).code, 0);
  const table = dfwe(ws, ['runs']).stdout;
  assert.equal(table.split('\n').filter((l) => /^\d{8}-/.test(l)).length, 2, table);
  assert.match(table, / in\.txt, lib\.py edited +1 +0 +0 /);
  assert.match(table, /\(3 no-op runs, everything cached as the run before, not shown: --noops\)/);
  assert.equal(dfwe(ws, ['runs', '--noops']).stdout.split('\n').filter((l) => /^\d{8}-.* \(same\) /.test(l)).length, 3);
});

/** DFWE's shape over two targets: experts and finetunes fan out, a merge and the baselines fan in; dagre routes some of its edges left of x = 0. */
const DAG_SWEEP = `version: 1
params:
  tasks: [t0, t1, t2, t3]
sweep:
  target: [t0, t1]
stages:
  data:
    cmd: echo d > \${{ outs.o }}
    outs: { o: ~ }
  base:
    cmd: cat \${{ stages.data.outs.o }} > \${{ outs.o }}
    outs: { o: ~ }
  expert:
    foreach: { tasks: "\${{ [[target], [target] + params.tasks.filter(t, t != target)] + params.tasks.filter(t, t != target).map(s, [s]) }}" }
    cmd: cat \${{ stages.base.outs.o }} > \${{ outs.o }} && echo \${{ quote(tasks) }} >> \${{ outs.o }}
    outs: { o: ~ }
  finetune:
    foreach: { tasks: "\${{ [[target], [target] + params.tasks.filter(t, t != target)] + params.tasks.filter(t, t != target).map(s, [s]) }}" }
    cmd: cat \${{ stages.expert.outs.o }} > \${{ outs.o }} && echo \${{ target }} >> \${{ outs.o }}
    outs: { o: ~ }
  baseline:
    cmd: cat \${{ stages.base.outs.o }} \${{ stages.data.outs.o }} > \${{ outs.o }} && echo \${{ target }} >> \${{ outs.o }}
    outs: { o: ~ }
  merge:
    cmd: cat \${{ stages.finetune.outs.o }} > \${{ outs.o }}
    outs: { o: ~ }
  test_dfwe:
    cmd: cat \${{ stages.merge.outs.o }} \${{ stages.data.outs.o }} > \${{ outs.o }}
    outs: { o: ~ }
  test_baseline:
    cmd: cat \${{ stages.baseline.outs.o }} \${{ stages.data.outs.o }} > \${{ outs.o }}
    outs: { o: ~ }
`;

test('the report\'s graph holds every edge and box it draws inside its viewBox', () => {
  const ws = workspace({ 'dfwe.yaml': DAG_SWEEP });
  assert.equal(dfwe(ws, ['report', '-o', 'r.html']).code, 0);
  const page = readFileSync(join(ws, 'r.html'), 'utf8');
  const svg = page.slice(page.indexOf('<svg class="dag"'), page.indexOf('</svg>', page.indexOf('<svg class="dag"')));
  const [vx, vy, w, h] = /viewBox="([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+)"/.exec(svg)!.slice(1).map(Number) as [number, number, number, number];
  const points: [number, number][] = [];
  for (const [, d] of svg.matchAll(/class="dag-edge" d="M([^"]+)"/g)) for (const p of d!.split('L')) points.push(p.split(',').map(Number) as [number, number]);
  for (const [, x, y, rw, rh] of svg.matchAll(/<rect x="([-\d.]+)" y="([-\d.]+)" width="([-\d.]+)" height="([-\d.]+)"/g)) {
    points.push([Number(x), Number(y)], [Number(x) + Number(rw), Number(y) + Number(rh)]);
  }
  assert.ok(points.length > 50);
  for (const [x, y] of points) assert.ok(x >= vx && x <= vx + w && y >= vy && y <= vy + h, `(${x}, ${y}) outside the viewBox ${vx} ${vy} ${w} ${h}`);
});

test('expression errors are said all at once, a syntax error behind a failed upstream included', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
params: { lr: 1 }
stages:
  a:
    cmd: echo \${{ params.lrr }} > \${{ outs.o }}
    outs: { o: ~ }
  b:
    cmd: echo \${{ stages.a.outs.o }} \${{ size( }} \${{ params.nope }} > \${{ outs.o }}
    outs: { o: ~ }
  c:
    foreach: { x: [1, 2] }
    cmd: echo \${{ y }} > \${{ outs.o }}
    outs: { o: ~ }
`,
  });
  const r = dfwe(ws, ['status']);
  assert.equal(r.code, 2);
  const errors = r.stderr.split('\n').filter((l) => / error: /.test(l));
  assert.deepEqual(errors, [
    'dfwe.yaml:5:26: error: expression: unknown param "lrr"; did you mean "lr"?',
    'dfwe.yaml:8:48: error: expression: Unexpected token: EOF',
    'dfwe.yaml:8:62: error: expression: unknown param "nope"',
    'dfwe.yaml:12:19: error: expression: unknown variable "y"; did you mean "x"? (in scope: params, stages, x)',
  ]);
});
