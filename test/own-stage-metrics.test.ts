import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, ran, workspace, write } from './helpers.js';

/*
 * Metrics from a user's own command stages (issue 24): a stage declares the JSON files it writes
 * under `metrics`, their numbers become the node's metrics, and `report` compares such stages as
 * it does the built-in evaluate: dfwe metrics, runs, diff and the HTML report.
 */

/** A DFWE-shaped sweep of shell stages: each target × source set, the baseline per target. `gain` moves every method score. */
const sweep = (gain: string, extra = ''): string => `version: 1
report: { baseline: test_baseline, method: test_dfwe${extra} }
params:
  gain: ${gain}
  base: { emory: 60, meld: 40 }
sweep:
  target: [emory, meld]
  sources: "\${{ [['a'], ['b']] }}"
stages:
  test_baseline:
    cmd: >-
      echo '{"\${{ target }}": {"score": \${{ params.base[target] }}, "loss": 0.5}, "split": "test"}' > \${{ outs.scores }}
    metrics: { scores: ~ }
  test_dfwe:
    cmd: >-
      echo '{"\${{ target }}": {"score": \${{ double(params.base[target]) + double(params.gain) + (sources == ['a'] ? 1.0 : 0.0) }}}}' > \${{ outs.scores }}
    metrics: { scores: ~ }
`;

test('a command stage with a metrics file: its numbers are the node\'s metrics, and report compares it in metrics, runs, diff and the HTML report', () => {
  const ws = workspace({ 'dfwe.yaml': sweep('2.0') });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r).length, 6);
  // The nested JSON's numbers, by dotted name; the string beside them is not a metric.
  const shown = JSON.parse(dfwe(ws, ['show', '--json', 'test_baseline[target=meld]']).stdout);
  assert.deepEqual(shown.record.metrics, { 'meld.loss': 0.5, 'meld.score': 40 });

  // The paper's table, as for the built-in evaluate: per target the best and mean delta over the source sets.
  const table = dfwe(ws, ['metrics']).stdout;
  assert.match(table, /^\| emory +\| +60\.00 \| +63\.00 \| +\+3\.00 \| +\+2\.50 \| +2 \|$/m);
  assert.match(table, /^\| meld +\| +40\.00 \| +43\.00 \| +\+3\.00 \| +\+2\.50 \| +2 \|$/m);
  assert.match(table, /^\| average +\| +50\.00 \| +53\.00 \| +\+3\.00 \|/m);
  const json = JSON.parse(dfwe(ws, ['metrics', '--json']).stdout) as { pairs: { task: string; method: string; baseline: string; delta: number }[] };
  assert.deepEqual(json.pairs.map((p) => [p.task, p.baseline, p.delta]).sort(), [
    ['emory', 'test_baseline[target=emory]', 2], ['emory', 'test_baseline[target=emory]', 3],
    ['meld', 'test_baseline[target=meld]', 2], ['meld', 'test_baseline[target=meld]', 3],
  ]);

  // The history keeps the average delta; a second run with another gain is compared by diff.
  assert.equal(dfwe(ws, ['run', '--param', 'gain=-1.0']).code, 0);
  const runs = (JSON.parse(dfwe(ws, ['runs', '--json']).stdout) as { runs: { averageDelta: number }[] }).runs;
  assert.deepEqual(runs.map((x) => x.averageDelta), [3, 0]);
  assert.match(dfwe(ws, ['runs']).stdout, /gain: 2 → -1 .* 0\.00  succeeded/);
  const diff = dfwe(ws, ['diff']).stdout;
  assert.match(diff, /^gain +2 +-1$/m);
  assert.match(diff, /^test_dfwe\[sources=a,target=emory\]: emory\.score +63 +60 +-3\.00$/m);

  // The HTML report: the table and the sweep's heatmap, from the command stages' metrics.
  assert.equal(dfwe(ws, ['run', '--param', 'gain=2.0']).code, 0);
  const rep = dfwe(ws, ['report', '-o', 'r.html']);
  assert.equal(rep.code, 0, rep.stderr);
  const page = readFileSync(join(ws, 'r.html'), 'utf8');
  assert.match(page, /<tr data-task="emory"><td>emory<\/td><td class="n">60\.00<\/td><td class="n">63\.00<\/td><td class="n"[^>]*>\+3\.00<\/td>/);
  assert.match(page, /<div class="panel" id="heatmap">/);
});

test('a bare score names its task by report.task; report.score compares another metric', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
report: { baseline: base, method: merged, task: target, score: accuracy }
stages:
  base:
    foreach: { target: [x, y] }
    cmd: "echo '{\\"accuracy\\": 50, \\"score\\": 99, \\"on\\": \\"\${{ target }}\\"}' > \${{ outs.m }}"
    metrics: { m: ~ }
  merged:
    foreach: { target: [x, y] }
    cmd: "echo '{\\"accuracy\\": 52.5, \\"score\\": 1, \\"on\\": \\"\${{ target }}\\"}' > \${{ outs.m }}"
    metrics: { m: ~ }
`,
  });
  // Before anything ran, the tasks are known from the variable.
  assert.match(dfwe(ws, ['metrics']).stdout, /^\| x +\| +— \|/m);
  assert.equal(dfwe(ws, ['run']).code, 0);
  const table = dfwe(ws, ['metrics']).stdout;
  assert.match(table, /^\| x +\| +50\.00 \| +52\.50 \| +\+2\.50 \|$/m);
  assert.match(table, /^\| y +\| +50\.00 \| +52\.50 \| +\+2\.50 \|$/m);
});

test('metrics files that cannot be metrics fail their node, named, and cache nothing; a mis-declared report or metrics is a located error', () => {
  const one = (cmd: string): string => `version: 1\nstages:\n  t:\n    cmd: "${cmd}"\n    metrics: { m: out/m.json }\n`;
  for (const [cmd, why] of [
    ["echo not json > out/m.json", /metrics file "m" \(out\/m\.json\) is not JSON/],
    ["echo '[1, 2]' > out/m.json", /metrics file "m" \(out\/m\.json\) must hold a JSON object of numbers/],
    ["echo '{\\\"note\\\": \\\"x\\\"}' > out/m.json", /metrics file "m" \(out\/m\.json\) holds no numbers/],
    ['echo 1 > out/real.json && ln -s real.json out/m.json', /metrics file "m" \(out\/m\.json\) is a symlink/],
  ] as const) {
    const ws = workspace({ 'dfwe.yaml': one(`mkdir -p out && ${cmd}`) });
    const r = dfwe(ws, ['run']);
    assert.equal(r.code, 1, cmd);
    assert.match(r.stderr, why, cmd);
    assert.match(r.stderr, /FAILED +t: metrics file/, cmd);
    // Nothing was committed: the next run tries again.
    assert.deepEqual(ran(dfwe(ws, ['run'])), ['t'], cmd);
  }

  // A metrics file that leads out of the workspace through a symlinked directory is not read.
  const outside = workspace({ 'm.json': '{"secret": 1}' });
  const ws = workspace({ 'dfwe.yaml': one(`rm -rf out && ln -s ${outside} out`) });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /metrics file "m" \(out\/m\.json\) is really .*m\.json, outside the workspace \(a symlink on its way\); it was not read/);

  const bad = workspace({
    'dfwe.yaml': `version: 1
report: { baseline: a, method: b }
stages:
  a:
    cmd: echo 1 > a.txt
    outs: { o: a.txt }
  b:
    cmd: echo 1 > b.json
    outs: { m: b.json }
    metrics: { m: b2.json }
  c:
    uses: prepare-data
    metrics: { m: c.json }
`,
  });
  const e = dfwe(bad, ['status']);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /dfwe\.yaml:2:21: error: report\.baseline names stage "a", a cmd stage without metrics[\s\S]*hint: declare the JSON file its command writes: metrics: \{ scores: out\/a\.json \}/);
  assert.match(e.stderr, /dfwe\.yaml:10:16: error: stage "b" names "m" both under outs and under metrics/);
  assert.match(e.stderr, /dfwe\.yaml:13:5: error: stage "c": "metrics" declares a command's metrics files; a built-in stage \(prepare-data\) reports its own/);
});

test('a metrics file is an output like any other: downstream stages read it, and its path can be placed', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  ev:
    cmd: "mkdir -p res && echo '{\\"score\\": 7}' > res/ev.json"
    metrics: { m: res/ev.json }
  summary:
    cmd: cat \${{ stages.ev.outs.m }} > s.txt
    outs: { s: s.txt }
`,
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(ws, 's.txt'), 'utf8'), '{"score": 7}\n');
  write(ws, 'res/unrelated', '');
  assert.deepEqual(JSON.parse(dfwe(ws, ['show', '--json', 'ev']).stdout).record.metrics, { score: 7 });
  symlinkSync('nowhere', join(ws, 'dangling'));
  assert.deepEqual(ran(dfwe(ws, ['run'])), []);
});
