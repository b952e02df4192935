import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAttempt } from '../src/cache/records.js';
import { FAILURE_KINDS, type Finished } from '../src/execute/runner.js';
import { listRuns } from '../src/history/runs.js';
import { BIN, REPO, workspace } from './helpers.js';
import { openIn, runIn } from './in-process.js';

/*
 * A failed node says why as data (runner.ts's FailureKind), not only as a message: its stage's
 * own failure, an output it did not write, metrics dfwe cannot read, an output dfwe refuses to
 * store. The kind reaches the node's attempt (`dfwe show`) and the run's history.
 */

const PIPELINE = `version: 1
stages:
  exits:
    cmd: echo partial > \${{ outs.o }}; exit 3
    outs: { o: out/exits.txt }
  silent:
    cmd: "true"
    outs: { o: out/silent.txt }
  badmetrics:
    cmd: echo 1 > \${{ outs.o }}; echo not-json > \${{ outs.scores }}
    outs: { o: out/badmetrics.txt }
    metrics: { scores: ~ }
  linked:
    cmd: ln -s ../dfwe.yaml \${{ outs.o }}
    outs: { o: out/linked.txt }
  fine:
    cmd: echo fine > \${{ outs.o }}
    outs: { o: out/fine.txt }
`;

const kindOf = (o: Finished | undefined): string | undefined => (o?.status === 'failed' ? o.kind : o?.status);

test('each way a node fails has its kind, in the outcome, its attempt, dfwe show and the history', async () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  const project = await openIn(ws);
  const { outcomes, failed } = await runIn(project, { keepGoing: true });
  assert.deepEqual(
    Object.fromEntries(['exits', 'silent', 'badmetrics', 'linked', 'fine'].map((id) => [id, kindOf(outcomes.get(id))])),
    { exits: 'exit', silent: 'missing-output', badmetrics: 'metrics', linked: 'output-refused', fine: 'ran' },
  );
  assert.equal(failed.length, 4);
  const exits = outcomes.get('exits');
  assert.ok(exits?.status === 'failed' && exits.exitCode === 3 && /exit code 3/.test(exits.error));
  assert.equal(readAttempt(project.store, project.workspace, 'silent')?.kind, 'missing-output');

  // Through the CLI: the history's node lines carry the kind, and show says it in words.
  const run = spawnSync(process.execPath, [BIN, 'run', '--keep-going'], { cwd: ws, encoding: 'utf8' });
  assert.equal(run.status, 1, run.stderr);
  const { runs } = listRuns(project.store);
  const lines = runs.at(-1)!.nodes.filter((n) => n.state === 'failed');
  assert.deepEqual(Object.fromEntries(lines.map((n) => [n.id, n.kind])), { exits: 'exit', silent: 'missing-output', badmetrics: 'metrics', linked: 'output-refused' });
  const show = spawnSync(process.execPath, [BIN, 'show', 'linked'], { cwd: ws, encoding: 'utf8' });
  assert.match(show.stdout, /last attempt failed at \S+ \(output-refused: dfwe cannot store an output as it is/);
});

test('every failure kind is in the reference, with the words dfwe show prints', () => {
  const doc = readFileSync(join(REPO, 'docs/reference/cli.md'), 'utf8');
  for (const [kind, words] of Object.entries(FAILURE_KINDS)) assert.ok(doc.includes(`| \`${kind}\` | ${words} |`), `docs/reference/cli.md lists ${kind}`);
});
