import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { dfwe, oneTensorModel, ran, READER, read, workspace, write } from './helpers.js';

/*
 * merge-search through the real CLI, with evaluators written in Python's standard library (the
 * default python3): a reader of safetensors from the format's description, scoring a candidate by
 * its distance to a target.
 */


function setup(extra: Record<string, string> = {}): string {
  const ws = workspace({ 'score.py': `${READER}print(json.dumps(score(sys.argv[1])))\n`, ...extra });
  writeFileSync(join(ws, 'a.safetensors'), oneTensorModel([1, 0, 0]));
  writeFileSync(join(ws, 'b.safetensors'), oneTensorModel([0, 1, 0]));
  writeFileSync(join(ws, 'c.safetensors'), oneTensorModel([0, 0, 1]));
  return ws;
}

const pipeline = (withExtra: string, stages = ''): string => `version: 1
stages:
  search:
    uses: merge-search
    deps: [a.safetensors, b.safetensors, c.safetensors]
    with:
      models: [a.safetensors, b.safetensors, c.safetensors]
${withExtra.split('\n').map((l) => `      ${l}`).join('\n')}
${stages}`;

test('merge-search with a command per candidate finds the weights the scorer likes; reruns are cached; editing the scorer (declared in deps; undeclared, it is warned about) reruns the search and what reads it', () => {
  const ws = setup();
  const yaml = pipeline('max_evals: 80\nscore: python3 score.py {model}', `  report:
    cmd: python3 -c "import json; print(json.load(open('\${{ stages.search.outs.search }}'))['weights'])" > \${{ outs.o }}
    outs: { o: out/report }
  other:
    cmd: echo untouched > \${{ outs.o }}
    outs: { o: out/other }
`);
  write(ws, 'dfwe.yaml', yaml);
  assert.match(dfwe(ws, ['status']).stderr, /warning: stage "search" reads "score\.py" \(named in its score\) but does not declare it/);
  write(ws, 'dfwe.yaml', yaml.replace('deps: [a.safetensors,', 'deps: [score.py, a.safetensors,'));
  const r = dfwe(ws, ['run']);
  assert.doesNotMatch(r.stderr, /warning/);
  assert.equal(r.code, 0, r.stderr);
  const trace = JSON.parse(read(ws, 'out/search/search'));
  assert.equal(trace.evaluations, 80);
  assert.deepEqual(trace.trace.slice(0, 3).map((t: { source: string }) => t.source), ['vertex', 'vertex', 'vertex'], 'every model alone first');
  trace.weights[0].forEach((x: number, i: number) => assert.ok(Math.abs(x - [0.2, 0.5, 0.3][i]!) < 0.05, `weights ${trace.weights}`));
  assert.ok(trace.score > trace.best_single_score);
  // The output is the best candidate: the Python reader finds those weights in it.
  const check = dfwe(ws, ['run']);
  assert.deepEqual(ran(check), [], 'a rerun is all cached');
  write(ws, 'score.py', read(ws, 'score.py').replace('TARGET = [0.2, 0.5, 0.3]', 'TARGET = [0.6, 0.3, 0.1]'));
  const again = dfwe(ws, ['run']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(ran(again), ['report', 'search'], 'only the search and what reads it');
});

test('a scorer server is started once and answers JSON lines', () => {
  const ws = setup({
    'serve.py': `${READER}import sys
print('loading data once', file=sys.stderr)
for line in sys.stdin:
    req = json.loads(line)
    print('a progress line that is not an answer', flush=True)
    print(json.dumps(score(req['model'])), flush=True)
`,
  });
  write(ws, 'dfwe.yaml', pipeline('optimizer: nelder-mead\nmax_evals: 40\nscore_server: python3 serve.py'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const log = dfwe(ws, ['show', 'search', '--log']).stdout;
  assert.equal((log.match(/loading data once/g) ?? []).length, 1, 'started once');
  assert.match(log, /score: a progress line that is not an answer/);
  const trace = JSON.parse(read(ws, 'out/search/search'));
  assert.equal(trace.evaluations, 40);
  assert.ok(trace.score > -0.01, JSON.stringify(trace.weights));
});

test('every way an evaluator can fail is a clear error of the node, with the end of its stderr', () => {
  const cases: [string, RegExp][] = [
    ['score: "echo something went wrong >&2; exit 3"', /the scorer `echo something went wrong >&2; exit 3` \(candidate 0\) failed \(exit code 3\); its stderr ended with:\n.*something went wrong/],
    ['score: echo hello', /printed no JSON line with a score, such as \{"score": 71\.2, "loss": 0\.83\}/],
    ['score: python3 nan.py', /printed \{"score": NaN\}, which is not JSON \(NaN and Infinity are not JSON numbers\)/],
    ['score: python3 null.py', /printed score null: it must be a finite number/],
    ['score: sleep 30\nscore_timeout: 1', /took longer than 1 s \(score_timeout\) and was stopped/],
    ['score_server: python3 dies.py', /the scorer server `python3 dies\.py` ended \(exit code 4\) before it answered \(candidate 1\); its stderr ended with:\n.*dying/],
    ['score_server: sleep 30\nscore_timeout: 1', /the scorer server `sleep 30` \(candidate 0\) took longer than 1 s \(score_timeout\) to answer/],
  ];
  for (const [setting, message] of cases) {
    const ws = setup({
      'nan.py': "import json\nprint(json.dumps({'score': float('nan')}))\n",
      'null.py': "print('{\"score\": null}')\n",
      // Answers the first candidate, then dies on the second.
      'dies.py': "import sys\nsys.stdin.readline()\nprint('{\"score\": 1}', flush=True)\nsys.stdin.readline()\nprint('dying', file=sys.stderr)\nsys.exit(4)\n",
    });
    write(ws, 'dfwe.yaml', pipeline(`max_evals: 5\n${setting}`));
    const t0 = Date.now();
    const r = dfwe(ws, ['run']);
    assert.equal(r.code, 1, `${setting}: ${r.stderr}`);
    assert.match(r.stderr, /FAILED +search: stage merge-search failed \(exit code 1\)/, setting);
    assert.match(r.stderr, message, setting);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at .*\.js:\d+/, setting);
    assert.ok(Date.now() - t0 < 20_000, `${setting}: took ${Date.now() - t0} ms`);
  }
});

test('merge-search settings are checked when planning: one evaluator, greedy-soup only on the simplex', () => {
  const ws = setup();
  for (const [setting, message] of [
    ['max_evals: 5', /give exactly one of "score" \(a command run per candidate\) or "score_server"/],
    ['score: a\nscore_server: b', /give exactly one of "score"/],
    ['method: task_arithmetic\nbase: a.safetensors\noptimizer: greedy-soup\nscore: a', /greedy-soup averages models; method task_arithmetic's weights are not on the simplex/],
    ['method: ties\nscore: a', /method ties needs "base"/],
    ['params: { densty: 0.3 }\nmethod: ties\nbase: a.safetensors\nscore: a', /unknown key "densty" in "with\.params" of stage "search"; did you mean "density"\?/],
  ] as const) {
    write(ws, 'dfwe.yaml', pipeline(setting));
    const r = dfwe(ws, ['status']);
    assert.equal(r.code, 2, `${setting}: ${r.stderr}`);
    assert.match(r.stderr, /dfwe\.yaml:\d+:\d+: error: /, setting);
    assert.match(r.stderr, message, setting);
  }
});

test('merge-search with groups: one set of weights per group of tensors, each found on its own', () => {
  const ws = workspace({
    'score.py': `${READER}w = load(sys.argv[1])
# The encoder is best mostly from model a, the head mostly from model b.
print(json.dumps({'score': -sum((x - t) ** 2 for x, t in zip(w['enc'], [0.8, 0.2])) - sum((x - t) ** 2 for x, t in zip(w['head'], [0.1, 0.9]))}))
`,
  });
  const two = (enc: number[], head: number[]): Buffer => {
    const body = Buffer.from(new Float32Array([...enc, ...head]).buffer);
    const header = Buffer.from(JSON.stringify({ enc: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, head: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    return Buffer.concat([len, header, body]);
  };
  writeFileSync(join(ws, 'a.safetensors'), two([1, 0], [1, 0]));
  writeFileSync(join(ws, 'b.safetensors'), two([0, 1], [0, 1]));
  write(ws, 'dfwe.yaml', `version: 1
stages:
  search:
    uses: merge-search
    deps: [a.safetensors, b.safetensors, score.py]
    with:
      models: [a.safetensors, b.safetensors]
      groups: [enc]
      optimizer: cma-es
      max_evals: 50
      score: python3 score.py {model}
`);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(read(ws, 'out/search/search'));
  assert.deepEqual(s.groups, ['enc', '(other tensors)']);
  assert.ok(Math.abs(s.weights[0][0] - 0.8) < 0.05 && Math.abs(s.weights[1][1] - 0.9) < 0.05, JSON.stringify(s.weights));
});

test('candidates are written to RAM when /dev/shm has room, and the record says where and what each cost; a killed search\'s directory is swept, nothing else is', { skip: existsSync('/dev/shm') ? false : 'no /dev/shm here' }, () => {
  const ws = setup({ 'where.py': `${READER}import sys\nopen('where.txt', 'a').write(sys.argv[1] + '\\n')\nprint(json.dumps(score(sys.argv[1])))\n` });
  // A directory a killed search left (its owner, pid 2^22 + 1, is gone), and one that is not dfwe's.
  const stale = mkdtempSync('/dev/shm/dfwe-candidates-');
  writeFileSync(join(stale, '.dfwe-owner'), JSON.stringify({ pid: 4194305, start: null }));
  writeFileSync(join(stale, 'candidate'), 'left behind');
  const foreign = mkdtempSync('/dev/shm/dfwe-candidates-');
  writeFileSync(join(foreign, 'users-file'), 'mine');
  try {
    write(ws, 'dfwe.yaml', pipeline('max_evals: 6\nscore: python3 where.py {model}').replace('deps: [', 'deps: [where.py, '));
    const r = dfwe(ws, ['run']);
    assert.equal(r.code, 0, r.stderr);
    const record = JSON.parse(read(ws, 'out/search/search'));
    assert.equal(record.candidates.written_to, 'ram (/dev/shm)');
    assert.equal(record.candidates.merged, 6);
    assert.ok(record.candidates.merge_and_write_ms.mean > 0 && record.candidates.score_ms.mean > 0 && record.candidates.overhead_vs_score > 0);
    const dirs = read(ws, 'where.txt').trim().split('\n');
    assert.equal(dirs.length, 6);
    assert.ok(dirs.every((d) => d.startsWith('/dev/shm/dfwe-candidates-')), dirs.join(' '));
    assert.ok(!existsSync(dirname(dirs[0]!)), 'the search removes its directory');
    assert.ok(!existsSync(stale), 'a dead search\'s directory is swept');
    assert.equal(readFileSync(join(foreign, 'users-file'), 'utf8'), 'mine', 'an unmarked directory is left alone');
    // Turned off: the node's scratch, on disk.
    write(ws, 'dfwe.yaml', pipeline('max_evals: 4\nscore: python3 where.py {model}\nseed: 1').replace('deps: [', 'deps: [where.py, '));
    const off = dfwe(ws, ['run'], { DFWE_RAM_SCRATCH: '0' });
    assert.equal(off.code, 0, off.stderr);
    assert.match(JSON.parse(read(ws, 'out/search/search')).candidates.written_to, /^disk \(DFWE_RAM_SCRATCH=0\)/);
    assert.ok(read(ws, 'where.txt').trim().split('\n').slice(6).every((d) => !d.startsWith('/dev/shm')));
  } finally {
    rmSync(stale, { recursive: true, force: true });
    rmSync(foreign, { recursive: true, force: true });
  }
});
