import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandWords } from '../src/engine/undeclared.js';
import { dfwe, oneTensorModel, ran, workspace, write } from './helpers.js';

/*
 * Files a command names but its stage does not declare (issue 24): one rule for a stage's cmd
 * and a search's score and score_server, said as located warnings, errors under strict: true.
 */

/** The README's shape: a search whose scorer server reads dev.jsonl, declared or not. */
function search(deps: string, strict = false): string {
  return `version: 1
${strict ? 'strict: true\n' : ''}stages:
  dfwe:
    uses: merge-search
    deps: ${deps}
    with:
      models: [a.safetensors, b.safetensors]
      max_evals: 3
      score_server: python3 score.py dev.jsonl --serve
`;
}

test('a scorer that names dev.jsonl without declaring it is warned, located; strict makes it an error; declared, an edit reruns the search', () => {
  // A scorer server: one answer per request, the dev set's x as the score.
  const server = 'import json, sys\nx = json.load(open(sys.argv[1]))["x"]\nfor line in sys.stdin:\n    print(json.dumps({"score": x}), flush=True)\n';
  const ws = workspace({ 'score.py': server, 'dev.jsonl': '{"x": 1}\n' });
  writeFileSync(join(ws, 'a.safetensors'), oneTensorModel([1, 2]));
  writeFileSync(join(ws, 'b.safetensors'), oneTensorModel([3, 4]));
  write(ws, 'dfwe.yaml', search('[score.py]'));
  const st = dfwe(ws, ['status']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stderr, /^dfwe\.yaml:9:21: warning: stage "dfwe" reads "dev\.jsonl" \(named in its score_server\) but does not declare it: a change to it will not rerun the stage$/m);
  assert.match(st.stderr, /hint: add it to the stage's deps: \[dev\.jsonl\]/);
  assert.doesNotMatch(st.stderr, /reads "score\.py"/, 'a declared script is not warned about');

  write(ws, 'dfwe.yaml', search('[score.py]', true));
  const strict = dfwe(ws, ['run']);
  assert.equal(strict.code, 2);
  assert.match(strict.stderr, /^dfwe\.yaml:10:21: error: stage "dfwe" reads "dev\.jsonl"/m);
  assert.deepEqual(ran(strict), []);

  // Declared: no warning, and the stale search of the issue is gone (an edit of dev.jsonl reruns it).
  write(ws, 'dfwe.yaml', search('[score.py, dev.jsonl]', true));
  const ok = dfwe(ws, ['status']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.doesNotMatch(ok.stderr, /warning/);
  const first = dfwe(ws, ['run']);
  assert.equal(first.code, 0, first.stderr);
  write(ws, 'dev.jsonl', '{"x": 2}\n');
  assert.match(dfwe(ws, ['why', 'dfwe']).stdout, /dfwe will run: dep dev\.jsonl changed/);
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['dfwe']);
});

test('a command that reads another stage\'s output without a reference is warned with the expression to use; deps, own outputs and unknown words are not', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  prep:
    cmd: mkdir -p data && cat raw/a.csv > data/clean.csv
    deps: [raw]
    outs: { table: data/clean.csv }
  use:
    cmd: cat data/clean.csv "$HOME" notes.txt *.csv > used.txt --opt=settings.ini
    outs: { o: used.txt }
`,
    'raw/a.csv': 'x\n',
    'notes.txt': 'n\n',
    'settings.ini': 's\n',
  });
  const r = dfwe(ws, ['run', '-n']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /dfwe\.yaml:8:10: warning: stage "use" reads "data\/clean\.csv" \(named in its cmd\), an output of prep, without depending on it/);
  assert.match(r.stderr, /hint: read it as \$\{\{ stages\.prep\.outs\.table \}\}, or list it under deps/);
  assert.match(r.stderr, /reads "notes\.txt"/);
  assert.match(r.stderr, /reads "settings\.ini"/);
  assert.equal((r.stderr.match(/warning:/g) ?? []).length, 3, 'raw/a.csv is in a declared dep, used.txt is its own output');
  assert.deepEqual(commandWords(`python3 x.py --data=d.csv -v "$X" 'q.txt' a*.csv {a,b} > o`), ['python3', 'x.py', 'd.csv', 'q.txt', 'o']);
});

test('what a status found is kept for the run, but a file that appeared since is warned, and an edit finds again', () => {
  const pipeline = (cmd: string): string => `version: 1\nstages:\n  a:\n    cmd: ${cmd} > \${{ outs.f }}\n    outs: { f: out/a }\n`;
  const ws = workspace({ 'dfwe.yaml': pipeline('cat notes.txt 2>/dev/null; echo a') });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', pipeline('cat notes.txt 2>/dev/null; echo  a'));
  const st = dfwe(ws, ['status']);
  assert.equal(st.code, 0, st.stderr);
  assert.doesNotMatch(st.stderr, /notes\.txt/, 'a word that names nothing is not warned');
  write(ws, 'notes.txt', 'n\n');
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^dfwe\.yaml:4:10: warning: stage "a" reads "notes\.txt" \(named in its cmd\) but does not declare it/m, 'the file is there now');
  write(ws, 'dfwe.yaml', `# a comment moves the lines\n${pipeline('cat notes.txt 2>/dev/null; echo  a')}`);
  assert.match(dfwe(ws, ['run', '-f', 'a']).stderr, /^dfwe\.yaml:5:10: warning: stage "a" reads "notes\.txt"/m, 'said where the command is now');
  write(ws, 'dfwe.yaml', pipeline('cat todo.txt 2>/dev/null; echo a'));
  write(ws, 'todo.txt', 't\n');
  const edited = dfwe(ws, ['status']);
  assert.match(edited.stderr, /reads "todo\.txt"/);
  assert.doesNotMatch(edited.stderr, /notes\.txt/, 'the edited command is what is looked at');
});

test('the first run into a new cache keeps what its check found, so the next run does not look again', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: cat notes.txt > ${{ outs.f }}\n    outs: { f: out/a }\n', 'notes.txt': 'n\n' });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /reads "notes\.txt" \(named in its cmd\) but does not declare it/);
  const memos = readdirSync(join(ws, 'cache/state/pipelines')).filter((n) => n.endsWith('.undeclared.json'));
  assert.equal(memos.length, 1, 'kept once the run claimed the cache');
  const kept = JSON.parse(readFileSync(join(ws, 'cache/state/pipelines', memos[0]!), 'utf8')) as { findings: { ifThere?: string }[] };
  assert.ok(kept.findings.some((f) => f.ifThere === 'notes.txt'), JSON.stringify(kept.findings));
});
