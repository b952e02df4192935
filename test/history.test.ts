import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { dfwe, dfweAsync, ran, waitFor, workspace, write } from './helpers.js';

/*
 * The run history through the real CLI: every run is recorded (params, overrides, what ran), runs
 * lists them, diff shows what differs between two, a killed run leaves a history that reads, and
 * gc keeps the results of the last runs.
 */

// Two small datasets: `small`'s size is a param, `fixed`'s is not; each reports its dialogue count.
const DATA = `
version: 1
params: { scenes: 40, label: a }
stages:
  small:
    uses: prepare-data
    with: { source: synthetic, scenes: "\${{ params.scenes }}", train: 20, dev: 10, test: 10 }
  fixed:
    uses: prepare-data
    with: { source: synthetic, scenes: 40, train: 20, dev: 10, test: 10 }
  note:
    cmd: echo "\${{ params.label }}" > out/note.txt
    outs: { note: out/note.txt }
`;

interface RunJson {
  id: string;
  status: string;
  changed: string;
  ran: number;
  cached: number;
  failed: number;
  overrides: Record<string, unknown>;
  params: Record<string, unknown>;
  executed: { id: string; state: string; lane: number; start: number; ms: number }[];
}

const runsOf = (ws: string, ...args: string[]): RunJson[] => {
  const r = dfwe(ws, ['runs', '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { runs: RunJson[] }).runs;
};

test('two runs with different params appear in dfwe runs, and dfwe diff shows exactly the param and the metric that changed', () => {
  const ws = workspace({ 'dfwe.yaml': DATA });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const second = dfwe(ws, ['run', '--param', 'scenes=60']);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(ran(second), ['small']);

  const runs = runsOf(ws);
  assert.equal(runs.length, 2);
  assert.deepEqual([runs[0]!.ran, runs[0]!.cached, runs[1]!.ran, runs[1]!.cached], [3, 0, 1, 2]);
  assert.equal(runs[1]!.changed, 'scenes: 40 → 60');
  assert.deepEqual(runs[1]!.executed.map((n) => [n.id, n.state, n.lane]), [['small', 'ran', 0]]);
  assert.ok(runs[1]!.executed[0]!.ms > 0 && runs[1]!.executed[0]!.start >= 0);
  assert.deepEqual(runs[1]!.overrides, { scenes: 60 });
  assert.equal(runs[1]!.params.label, 'a');
  const table = dfwe(ws, ['runs']).stdout;
  assert.match(table, new RegExp(`${runs[1]!.id} .* scenes: 40 → 60 +1 +2 +0 .* succeeded`));

  const d = dfwe(ws, ['diff', '--json']);
  assert.equal(d.code, 0, d.stderr);
  const diff = JSON.parse(d.stdout) as { a: string; b: string; params: { name: string; a: unknown; b: unknown }[]; settings: unknown[]; metrics: { name: string; a: number; b: number }[] };
  assert.deepEqual([diff.a, diff.b], [runs[0]!.id, runs[1]!.id]);
  assert.deepEqual(diff.params, [{ name: 'scenes', a: 40, b: 60, changed: true }]);
  assert.deepEqual(diff.settings, []);
  const dialogues = (...args: string[]): number => JSON.parse(dfwe(ws, ['show', '--json', 'small', ...args]).stdout).record.metrics.dialogues;
  assert.deepEqual(diff.metrics, [{ name: 'small: dialogues', a: dialogues(), b: dialogues('--param', 'scenes=60'), changed: true }]);
  assert.notEqual(diff.metrics[0]!.a, diff.metrics[0]!.b);

  // Text: the same rows; --all adds the unchanged ones.
  // A run named by a prefix of its id: one that the other run's id does not share (two runs in
  // one second share the id's time; its random part then tells them apart).
  const unique = [...runs[0]!.id].findIndex((c, i) => c !== runs[1]!.id[i]) + 1;
  const text = dfwe(ws, ['diff', runs[0]!.id.slice(0, Math.max(unique, 10))]).stdout;
  assert.match(text, /^scenes +40 +60$/m);
  assert.match(text, /^small: dialogues +\d+ +\d+ +[+-]\d+\.\d\d$/m);
  assert.doesNotMatch(text, /fixed|label/);
  const all = dfwe(ws, ['diff', '--all']).stdout;
  assert.match(all, /^label +a +a$/m);
  assert.match(all, /^fixed: dialogues +(\d+) +\1 +\+?0\.00$/m);

  // A no-op is a run too (told from the snapshot, all cached), the same as the run before it.
  assert.deepEqual(ran(dfwe(ws, ['run', '--param', 'scenes=60'])), []);
  const third = runsOf(ws).at(-1)!;
  assert.deepEqual([third.ran, third.cached, third.changed], [0, 3, '(same)']);

  // Located mistakes, not crashes.
  const bad = dfwe(ws, ['diff', 'nope']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no run "nope" in this cache's history/);
  assert.match(dfwe(ws, ['diff', 'last-9']).stderr, /no run "last-9": 3 runs are recorded/);
});

test('a killed run leaves a readable history: the nodes it finished, marked killed; the next run goes on', async () => {
  const ws = workspace({
    'dfwe.yaml': `
version: 1
stages:
  quick:
    cmd: echo done > out/quick.txt
    outs: { f: out/quick.txt }
  slow:
    cmd: echo $$ > slow.pid; cat out/quick.txt > /dev/null; exec sleep 60
    deps: [out/quick.txt]
    outs: { f: out/slow.txt }
`,
  });
  const run = dfweAsync(ws, ['run']);
  const historyFile = (): string => join(ws, 'cache/runs', readdirSync(join(ws, 'cache/runs')).find((n) => n.endsWith('.jsonl'))!);
  await waitFor(() => {
    try {
      return readFileSync(join(ws, 'slow.pid'), 'utf8').trim() !== '' && readFileSync(historyFile(), 'utf8').includes('"id":"quick"');
    } catch {
      return false;
    }
  }, 30_000, 'the quick node recorded and the slow one running');
  run.child.kill('SIGKILL');
  await run.done;
  process.kill(Number(readFileSync(join(ws, 'slow.pid'), 'utf8')), 'SIGKILL');
  // As if the kill had come in the middle of a line.
  appendFileSync(historyFile(), '{"t":"node","id":"slo');

  const [killed] = runsOf(ws);
  assert.equal(killed!.status, 'killed');
  assert.equal(killed!.ran, 1);
  assert.match(dfwe(ws, ['runs']).stdout, /killed/);

  write(ws, 'dfwe.yaml', readFileSync(join(ws, 'dfwe.yaml'), 'utf8').replace('exec sleep 60', 'echo ok > out/slow.txt'));
  const next = dfwe(ws, ['run']);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(ran(next), ['slow']);
  const runs = runsOf(ws);
  assert.deepEqual(runs.map((r) => r.status), ['killed', 'succeeded']);
  assert.equal(runs[1]!.changed, 'pipeline edited');
  assert.equal(dfwe(ws, ['diff']).code, 0);
});

test('gc keeps the results the last runs used (--keep-runs), and drops them with the history beyond', () => {
  const ws = workspace({ 'dfwe.yaml': DATA });
  assert.equal(dfwe(ws, ['run', '--param', 'scenes=60']).code, 0);
  assert.equal(dfwe(ws, ['run']).code, 0);
  // The pipeline as it is now (scenes 40) does not reach the scenes=60 result; the history does.
  assert.equal(dfwe(ws, ['gc']).code, 0);
  assert.deepEqual(ran(dfwe(ws, ['run', '--param', 'scenes=60'])), [], 'kept: a recent run used it');
  assert.equal(runsOf(ws).length, 3);
  const gc = dfwe(ws, ['gc', '--keep-runs', '1']);
  assert.match(gc.stdout, /the last 1 run of the history/);
  assert.equal(runsOf(ws).length, 1, 'older history went with it');
  // The last run was scenes=60: now scenes=40's `small` is reached by nothing but the pipeline itself.
  assert.deepEqual(ran(dfwe(ws, ['run'])), []);
  assert.equal(dfwe(ws, ['gc', '--keep-runs', '0']).code, 0);
  assert.deepEqual(ran(dfwe(ws, ['run', '--param', 'scenes=60'])), ['small'], 'removed once no kept run used it');
  assert.equal(dfwe(ws, ['gc', '--keep-runs', 'x']).code, 2);
});

test("a node's peak memory is measured and recorded: in the history and in dfwe show", () => {
  const ws = workspace({
    'dfwe.yaml': `
version: 1
stages:
  hog:
    cmd: ${process.execPath} -e "const b = Buffer.alloc(300 * 1024 * 1024, 1); setTimeout(() => require('fs').writeFileSync('out/hog.txt', String(b[5])), 800)"
    outs: { f: out/hog.txt }
`,
  });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const line = readFileSync(join(ws, 'cache/runs', readdirSync(join(ws, 'cache/runs')).find((n) => n.endsWith('.jsonl'))!), 'utf8').split('\n').map((l) => (l ? JSON.parse(l) : {})).find((l) => l.t === 'node');
  assert.ok(line.rss >= 300 * 1024 * 1024, `peak ${line.rss}`);
  assert.ok(line.rss < 1024 * 1024 * 1024, `peak ${line.rss}`);
  assert.match(dfwe(ws, ['show', 'hog']).stdout, /peak memory 3\d\d MiB/);
});

test("a run in a git repository records its commit and whether tracked files changed, without git writing anything or running the repository's fsmonitor", () => {
  const ws = workspace({ 'dfwe.yaml': DATA, 'notes.txt': 'one\n' });
  const git = (...args: string[]): string => {
    const r = spawnSync('git', args, { cwd: ws, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  git('init', '-q');
  write(ws, '.gitignore', 'cache/\nout/\n');
  git('add', 'dfwe.yaml', 'notes.txt', '.gitignore');
  git('commit', '-qm', 'first');
  const head = git('rev-parse', 'HEAD');
  // A repository whose config would start a program on every status: dfwe's git must not.
  git('config', 'core.fsmonitor', `touch ${join(ws, 'FSMONITOR-RAN')}; false`);
  const index = statSync(join(ws, '.git/index')).mtimeMs;

  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'notes.txt', 'two\n');
  write(ws, 'untracked.txt', 'untracked files do not make it dirty\n');
  assert.equal(dfwe(ws, ['run']).code, 0);
  const runs = (JSON.parse(dfwe(ws, ['runs', '--json']).stdout) as { runs: { git?: { commit: string; dirty: boolean } }[] }).runs;
  assert.deepEqual(runs.map((r) => r.git), [{ commit: head, dirty: false }, { commit: head, dirty: true }]);
  assert.equal(existsSync(join(ws, 'FSMONITOR-RAN')), false, 'the fsmonitor hook was not run');
  assert.equal(statSync(join(ws, '.git/index')).mtimeMs, index, 'the index was not rewritten');
  assert.match(dfwe(ws, ['diff', '--json']).stdout, /"name": "git commit",\s+"a": "[0-9a-f]{12}",\s+"b": "[0-9a-f]{12} \(dirty\)"/);
});

test('damaged history files are reported and skipped, never a crash; a run whose served set is gone is compared by its report alone', () => {
  const ws = workspace({ 'dfwe.yaml': DATA });
  assert.equal(dfwe(ws, ['run']).code, 0);
  assert.equal(dfwe(ws, ['run', '--param', 'scenes=60']).code, 0);
  write(ws, 'cache/runs/20000101-000000-dead.jsonl', 'not json\n{"t":"start"}\n');
  const listed = dfwe(ws, ['runs']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stderr, /20000101-000000-dead\.jsonl is not a readable run history file; skipped/);
  assert.equal(listed.stdout.trim().split('\n').length, 3, 'a header and the two runs');
  for (const f of readdirSync(join(ws, 'cache/runs/served'))) write(ws, `cache/runs/served/${f}`, '{"format":1,"nodes":[7]}');
  const d = dfwe(ws, ['diff']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /^scenes +40 +60$/m);
  assert.doesNotMatch(d.stdout, /dialogues/);
  assert.match(d.stdout, /node metrics are not in the cache any more/);
  const one = workspace({ 'dfwe.yaml': DATA });
  assert.equal(dfwe(one, ['run']).code, 0);
  assert.match(dfwe(one, ['diff']).stderr, /dfwe diff compares two runs; one is recorded/);
});
