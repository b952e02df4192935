import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, listFiles, REPO, workspace } from './helpers.js';

interface Case {
  name: string;
  yaml: string;
  /** Expected `dfwe.yaml:LINE:COL: error: MESSAGE` (message as a regexp source). */
  at: [number, number];
  message: RegExp;
  files?: Record<string, string>;
}

const cases: Case[] = [
  {
    name: 'a command longer than Linux starts',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo ${{ range(30000) }}\n',
    at: [4, 10],
    message: /the command of stage "a" is 168,894 bytes once its expressions are evaluated; Linux starts no command longer than 131,071 bytes/,
  },
  {
    name: 'YAML nested 2,000 levels deep (block)',
    yaml: 'version: 1\nparams:\n' + Array.from({ length: 2000 }, (_, i) => `${'  '.repeat(i + 1)}k:\n`).join('') + 'stages:\n  a: { cmd: echo }\n',
    at: [66, 129],
    message: /nested more than 64 levels deep/,
  },
  {
    name: 'YAML nested 2,000 levels deep (flow)',
    yaml: `version: 1\nparams:\n  p: ${'['.repeat(2000)}${']'.repeat(2000)}\nstages:\n  a: { cmd: echo }\n`,
    at: [3, 68],
    message: /nested more than 64 levels deep/,
  },
  {
    name: '__proto__ as an output name',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo hi > x\n    outs: { __proto__: x }\n',
    at: [5, 13],
    message: /"__proto__" cannot be a key/,
  },
  {
    name: 'a NUL byte in an environment variable',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo $A\n    env: { A: "x\\0y" }\n',
    at: [5, 12],
    message: /env "A" of stage "a" holds a NUL byte/,
  },
  {
    name: 'range() of 300 million',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo ${{ size(range(300000000)) }}\n',
    at: [4, 19],
    message: /range\(300000000\) would make 300,000,000 elements; the limit is 1,000,000/,
  },
  {
    name: 'combinations(range(40), 20)',
    yaml: 'version: 1\nsweep:\n  s: "${{ combinations(range(40), 20) }}"\nstages:\n  a:\n    cmd: echo ${{ s }}\n',
    at: [3, 11],
    message: /combinations\(a list of 40, 20\) would make more than 1,000,000 lists of 20 \(more than 1,000,000 values\)/,
  },
  {
    // Found by the fuzzer: the merge's own check ran on params its schema had rejected.
    name: "a merge whose models' stage failed to expand",
    yaml: readFileSync(join(REPO, 'pipelines/friends.yaml'), 'utf8')
      .split('\n  finetune:\n')
      .map((part, i) => (i === 1 ? part.replace('[target] + sources] + sources.map', '[target] + source+ sources.map') : part))
      .join('\n  finetune:\n')
      .replace('\n  baseline:\n', '\n  aseline:\n'),
    at: [82, 69],
    message: /expression: Expected RBRACKET, got EOF/,
  },
  {
    name: 'a sweep with no members',
    yaml: 'version: 1\nsweep:\n  s: "${{ combinations([1, 2], 3) }}"\nstages:\n  a:\n    cmd: echo ${{ s }}\n',
    at: [3, 3],
    message: /sweep variable "s" has no values, so the sweep has no members and nothing would run/,
  },
  {
    name: 'a report naming a stage that does not exist',
    yaml: 'version: 1\nreport: { baseline: tst, method: test }\nstages:\n  test: { uses: evaluate, with: { data: d, vocab: v, model: m, tasks: [t] } }\n',
    at: [2, 21],
    message: /report\.baseline names stage "tst", which the pipeline does not have; did you mean "test"\?/,
  },
  {
    name: 'a report naming a stage without metrics',
    yaml: 'version: 1\nreport: { baseline: b, method: test }\nstages:\n  b: { cmd: echo }\n  test: { uses: evaluate, with: { data: d, vocab: v, model: m, tasks: [t] } }\n',
    at: [2, 21],
    message: /report\.baseline names stage "b", a cmd stage without metrics: a report compares the metrics of evaluate stages and of stages that declare metrics files/,
  },
  {
    name: 'YAML syntax error',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: [echo, hi\n',
    at: [5, 1],
    message: /YAML: .*flow sequence/i,
  },
  {
    name: 'unknown key with a did-you-mean',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo hi\n    ouuts: { f: x.txt }\n',
    at: [5, 5],
    message: /unknown key "ouuts" in stage "a"; did you mean "outs"\?/,
  },
  {
    name: 'unknown top-level key',
    yaml: 'version: 1\nparms: {}\nstages:\n  a:\n    cmd: echo hi\n',
    at: [2, 1],
    message: /unknown key "parms" in the pipeline; did you mean "params"\?/,
  },
  {
    name: 'wrong type',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo hi\n    deps: data/in.txt\n',
    at: [5, 11],
    message: /"deps" of stage "a" must be array, not string/,
  },
  {
    name: 'wrong version',
    yaml: 'version: 2\nstages:\n  a:\n    cmd: echo hi\n',
    at: [1, 10],
    message: /"version" must be 1/,
  },
  {
    name: 'unknown stage reference',
    yaml: 'version: 1\nstages:\n  base:\n    cmd: echo hi > b.txt\n    outs: { f: b.txt }\n  next:\n    cmd: cat ${{ stages.bse.outs.f }}\n',
    at: [7, 25],
    message: /unknown stage "bse"; did you mean "base"\?/,
  },
  {
    name: 'unknown param',
    yaml: 'version: 1\nparams: { rate: 1 }\nstages:\n  a:\n    cmd: echo ${{ params.rat }}\n',
    at: [5, 26],
    message: /unknown param "rat"; did you mean "rate"\?/,
  },
  {
    name: 'expression syntax error',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo ${{ 1 + }}\n',
    at: [4, 23],
    message: /expression: Unexpected token/,
  },
  {
    name: 'dependency cycle',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: cat ${{ stages.b.outs.f }} > a.txt\n    outs: { f: a.txt }\n  b:\n    cmd: cat ${{ stages.a.outs.f }} > b.txt\n    outs: { f: b.txt }\n',
    at: [3, 3],
    message: /dependency cycle: a → b → a|dependency cycle: b → a → b/,
  },
  {
    name: 'duplicate stage',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo 1\n  a:\n    cmd: echo 2\n',
    at: [5, 3],
    message: /YAML: Map keys must be unique/,
  },
  {
    name: 'merge-conflict markers',
    yaml: 'version: 1\nstages:\n<<<<<<< HEAD\n  a:\n    cmd: echo 1\n=======\n  a:\n    cmd: echo 2\n>>>>>>> branch\n',
    at: [3, 1],
    message: /merge-conflict marker/,
  },
  {
    name: 'missing dep file',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: cat data/in.txt\n    deps: [data/in.txt]\n',
    at: [5, 12],
    message: /dependency "data\/in.txt" of stage "a" does not exist and no stage produces it/,
  },
  {
    name: 'both cmd and uses',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo\n    uses: prepare-data\n',
    at: [3, 3],
    message: /needs exactly one of "cmd" \(a shell command\) or "uses"/,
  },
  {
    name: 'unknown stage type',
    yaml: 'version: 1\nstages:\n  a:\n    uses: no-such-stage\n',
    at: [4, 11],
    message: /"uses" of stage "a": "no-such-stage" is not one of evaluate, finetune, init-model, interpolate, merge, merge-search, prepare-data, pretrain, train-expert, vocab/,
  },
  {
    name: 'neither cmd nor uses',
    yaml: 'version: 1\nstages:\n  a:\n    deps: []\n',
    at: [3, 3],
    message: /needs exactly one of "cmd"/,
  },
  {
    name: 'output outside the workspace',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo hi > ../x.txt\n    outs: { f: ../x.txt }\n',
    at: [5, 16],
    message: /output "f" "..\/x.txt" is outside the workspace/,
  },
  {
    name: 'two stages writing one path',
    yaml: 'version: 1\nstages:\n  a:\n    cmd: echo 1 > x.txt\n    outs: { f: x.txt }\n  b:\n    cmd: echo 2 > x.txt\n    outs: { g: x.txt }\n',
    at: [8, 16],
    message: /output "x.txt" of stage "b" overlaps output "x.txt" of stage "a"/,
  },
  {
    name: 'invalid stage name',
    yaml: 'version: 1\nstages:\n  my-stage:\n    cmd: echo\n',
    at: [3, 3],
    message: /invalid name "my-stage"/,
  },
];

for (const c of cases) {
  test(`bad pipeline: ${c.name} → located error, exit 2, nothing written`, () => {
    const ws = workspace({ 'dfwe.yaml': c.yaml, ...c.files });
    const before = listFiles(ws);
    for (const cmd of [['run'], ['status']]) {
      const r = dfwe(ws, cmd);
      assert.equal(r.code, 2, `${cmd[0]}: exit ${r.code}\n${r.stderr}`);
      const m = /^dfwe\.yaml:(\d+):(\d+): error: (.*)$/m.exec(r.stderr);
      assert.ok(m, `no located error in:\n${r.stderr}`);
      assert.deepEqual([Number(m[1]), Number(m[2])], c.at, r.stderr);
      assert.match(m[3]!, c.message);
      assert.match(r.stderr, /\n\s+\d+ \| .*\n\s+\| *\^+/, 'snippet with a caret');
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, 'no stack trace');
      assert.deepEqual(listFiles(ws), before, 'nothing written');
    }
  });
}

test('all errors of a file are reported at once', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo\n    ouuts: {}\n  b:\n    cmd: 3\n    depz: []\n' });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 2);
  assert.equal((r.stderr.match(/^dfwe\.yaml:\d+:\d+: error/gm) ?? []).length, 3, r.stderr);
});

test('a missing pipeline file and a bad flag are input errors too', () => {
  const ws = workspace();
  const r = dfwe(ws, ['run', 'nope.yaml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pipeline file not found: nope\.yaml/);
  const j = dfwe(ws, ['run', '--jobs', 'zero']);
  assert.equal(j.code, 2);
  assert.match(j.stderr, /--jobs takes a whole number/);
  const u = dfwe(ws, ['frobnicate']);
  assert.equal(u.code, 2);
});

test('a YAML alias bomb and an oversized file are refused quickly, with exit 2 and nothing written', () => {
  const lines = ['version: 1', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 9; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
  const ws = workspace({ 'bomb.yaml': lines.join('\n') + '\nstages:\n  s:\n    cmd: echo\n', 'big.yaml': `version: 1\n# ${'x'.repeat(17 * 1024 * 1024)}\nstages: {}\n` });
  const t0 = Date.now();
  const bomb = dfwe(ws, ['run', 'bomb.yaml']);
  assert.equal(bomb.code, 2);
  assert.match(bomb.stderr, /bomb\.yaml:1:1: error: YAML: Excessive alias count/);
  assert.ok(Date.now() - t0 < 10_000);
  const big = dfwe(ws, ['run', 'big.yaml']);
  assert.equal(big.code, 2);
  assert.match(big.stderr, /big\.yaml: pipeline file is \d+ bytes; the limit is 16777216/);
  assert.deepEqual(listFiles(ws), ['big.yaml', 'bomb.yaml']);
});

test('one failed expression is one error: valid references to its stage elsewhere say nothing more', () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo ${{ 1 + }} > ${{ outs.o }}\n    outs: { o: out/a }\n  b:\n    cmd: cat ${{ stages.a.outs.o }} > ${{ outs.o }}\n    outs: { o: out/b }\n  c:\n    deps: ["${{ stages.a.outs.o }}"]\n    cmd: echo c\n',
  });
  const r = dfwe(ws, ['status']);
  assert.equal(r.code, 2);
  assert.equal((r.stderr.match(/^dfwe\.yaml:\d+:\d+: error/gm) ?? []).length, 1, r.stderr);
  assert.match(r.stderr, /^dfwe\.yaml:4:\d+: error: expression: /m);
  assert.doesNotMatch(r.stderr, /No such key/);
});

test('--only values that match no member, repeated --only, and -n with bad options', () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nsweep:\n  target: [emotion, sentiment, topic]\nstages:\n  a:\n    cmd: echo ${{ target }} > ${{ outs.o }}\n    outs: { o: ~ }\n',
  });
  const typo = dfwe(ws, ['status', '--only', 'target=emotoin']);
  assert.equal(typo.code, 2, typo.stderr);
  assert.match(typo.stderr, /--only target=emotoin: no sweep member has target=emotoin; did you mean "emotion"\?/);
  assert.match(typo.stderr, /its values: emotion, sentiment, topic/);
  // Repeated: the union, not the last one.
  const both = JSON.parse(dfwe(ws, ['expand', '--json', '--only', 'target=emotion', '--only', 'target=topic']).stdout);
  assert.deepEqual(both.nodes.map((n: { id: string }) => n.id), ['a[target=emotion]', 'a[target=topic]']);
  for (const bad of [['-j', '0'], ['-j', 'abc'], ['--executor', 'foo'], ['-r', 'gpu']]) {
    const r = dfwe(ws, ['run', '-n', ...bad]);
    assert.equal(r.code, 2, `run -n ${bad.join(' ')}: ${r.stderr}`);
    assert.equal(dfwe(ws, ['run', ...bad]).code, 2);
  }
  assert.deepEqual(listFiles(ws), ['dfwe.yaml']);
});
