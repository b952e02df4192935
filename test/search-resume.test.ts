import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, oneTensorModel, read, READER, workspace, write } from './helpers.js';

/*
 * A search that dies resumes (issue 25): every scored candidate is journaled as it is scored, so
 * the rerun of the same node asks the journal first, re-scores nothing it has, walks the
 * optimizer's path from the same seed and ends with the uninterrupted run's result.
 */

// Counts its calls; fails the call numbered in fail_at once (a crash of the evaluator).
const SCORER = `${READER}calls = open('calls.log', 'a')
calls.write('x\\n')
calls.close()
n = sum(1 for _ in open('calls.log'))
if os.path.exists('fail_at') and n == int(open('fail_at').read()):
    os.remove('fail_at')
    sys.exit('the evaluator crashed')
if os.path.exists('kill_at') and n == int(open('kill_at').read()):
    # kill -9 of dfwe: the stage process that runs the search, and the run that started it.
    os.remove('kill_at')
    stage = os.getppid()
    run = int(open(f'/proc/{stage}/stat').read().rsplit(')', 1)[1].split()[1])
    os.kill(run, 9)
    os.kill(stage, 9)
    sys.exit(1)
print(json.dumps(score(sys.argv[1])))
`;

function setup(): string {
  const ws = workspace({ 'score.py': SCORER });
  writeFileSync(join(ws, 'a.safetensors'), oneTensorModel([1, 0, 0]));
  writeFileSync(join(ws, 'b.safetensors'), oneTensorModel([0, 1, 0]));
  writeFileSync(join(ws, 'c.safetensors'), oneTensorModel([0, 0, 1]));
  write(ws, 'dfwe.yaml', `version: 1
stages:
  search:
    uses: merge-search
    deps: [score.py]
    with:
      models: [a.safetensors, b.safetensors, c.safetensors]
      optimizer: nelder-mead
      max_evals: 30
      score: python3 score.py {model}
`);
  return ws;
}

const calls = (ws: string): number => readFileSync(join(ws, 'calls.log'), 'utf8').split('\n').filter(Boolean).length;

test('a search whose evaluator crashed at candidate 20 resumes: nothing scored is scored again, and the result is the uninterrupted run\'s', () => {
  const whole = setup();
  assert.equal(dfwe(whole, ['run']).code, 0);
  assert.equal(calls(whole), 30);

  const ws = setup();
  write(ws, 'fail_at', '20');
  const failed = dfwe(ws, ['run']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /the evaluator crashed/);
  assert.equal(calls(ws), 20);

  const again = dfwe(ws, ['run']);
  assert.equal(again.code, 0, again.stderr);
  // 19 candidates came from the journal; the one that crashed and the 10 after it were scored.
  assert.equal(calls(ws), 20 + 11);
  assert.match(dfwe(ws, ['show', 'search', '--log']).stdout, /resuming: 19 candidates scored by an earlier attempt/);
  const result = (w: string): unknown => {
    const s = JSON.parse(readFileSync(join(w, 'out/search/search'), 'utf8'));
    return { weights: s.weights, score: s.score, evaluations: s.evaluations, path: s.trace.map((t: { weights: unknown }) => t.weights) };
  };
  assert.deepEqual(result(ws), result(whole));
  assert.deepEqual(readFileSync(join(ws, 'out/search/model/a.safetensors')), readFileSync(join(whole, 'out/search/model/a.safetensors')));
  // Committed: the journal is gone.
  const resume = join(ws, 'cache/state/resume');
  assert.ok(!existsSync(resume) || readdirSync(resume).length === 0);
});

test('score_retries scores a candidate again after a transient failure of the evaluator: the search goes on', () => {
  const ws = setup();
  write(ws, 'dfwe.yaml', read(ws, 'dfwe.yaml').replace('max_evals: 30', 'max_evals: 30\n      score_retries: 1'));
  write(ws, 'fail_at', '7');
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(calls(ws), 31);
  assert.match(dfwe(ws, ['show', 'search', '--log']).stdout, /candidate 6: .*the evaluator crashed.*; scoring it again \(1 of 1\)/);
  // Without retries the same failure fails the search.
  const strict = setup();
  write(strict, 'fail_at', '7');
  assert.equal(dfwe(strict, ['run']).code, 1);
});

test('a search killed mid-way (kill -9 of dfwe) resumes: no candidate is scored twice, and the chosen weights are the uninterrupted run\'s', () => {
  const whole = setup();
  assert.equal(dfwe(whole, ['run']).code, 0);
  assert.equal(calls(whole), 30);

  const ws = setup();
  write(ws, 'kill_at', '15');
  const killed = dfwe(ws, ['run']);
  assert.notEqual(killed.code, 0, 'the run was killed');
  assert.equal(calls(ws), 15);

  const again = dfwe(ws, ['run']);
  assert.equal(again.code, 0, again.stderr);
  // 14 candidates were scored before the kill and come from the journal; the 15th never answered.
  assert.equal(calls(ws), 15 + 16);
  assert.match(dfwe(ws, ['show', 'search', '--log']).stdout, /resuming: 14 candidates scored by an earlier attempt/);
  const chosen = (w: string): unknown => JSON.parse(readFileSync(join(w, 'out/search/search'), 'utf8')).weights;
  assert.deepEqual(chosen(ws), chosen(whole));
  assert.deepEqual(readFileSync(join(ws, 'out/search/model/a.safetensors')), readFileSync(join(whole, 'out/search/model/a.safetensors')));
});
