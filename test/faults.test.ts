import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adversarial } from '../bench/adversarial.js';
import { killLoop } from '../bench/kill-loop.js';
import { dfwe, listFiles, ran, smallDisk, workspace, write } from './helpers.js';

test('a full disk during a commit: a clear error naming the node, no partial entry, and a rerun resumes', (t) => {
  const disk = smallDisk(t);
  if (!disk) return;
  const yaml = (kb: number) => `version: 1
stages:
  small:
    cmd: echo hi > \${{ outs.f }}
    outs: { f: out/small }
  big:
    cmd: head -c ${kb}000 /dev/zero | tr '\\0' x > \${{ outs.f }}
    outs: { f: out/big }
`;
  const ws = workspace({ 'dfwe.yaml': yaml(3000) });
  const cache = join(disk.dir, 'cache');
  const r = dfwe(ws, ['run', '--cache', cache, '--keep-going']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED +big: ran, but its results could not be stored: the disk holding the cache \(.*\) is full \(ENOSPC\); nothing of it was committed/);
  assert.deepEqual(listFiles(cache).filter((f) => f.includes('.tmp-')), [], 'no temporary file is left');
  const status = JSON.parse(dfwe(ws, ['status', '--json', '--cache', cache]).stdout).nodes as { id: string; state: string }[];
  assert.deepEqual(status.map((n) => `${n.id}:${n.state}`), ['small:cached', 'big:run'], 'the finished node survived; the failed one has no record');

  write(ws, 'dfwe.yaml', yaml(300));
  const again = dfwe(ws, ['run', '--cache', cache]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(ran(again), ['big']);
});

test('deps and outputs that a symlink leads out of the workspace are located errors unless allowed', () => {
  const outside = mkdtempSync(join(tmpdir(), 'dfwe-outside-'));
  writeFileSync(join(outside, 'secret.txt'), 'not yours\n');
  const yaml = (extra = '') => `version: 1
${extra}stages:
  read:
    cmd: cat data/secret.txt > \${{ outs.f }}
    deps: [data/secret.txt]
    outs: { f: res/copy }
`;
  const ws = workspace({ 'dfwe.yaml': yaml(), 'inside/ok.txt': 'fine\n' });
  symlinkSync(outside, join(ws, 'data'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /dfwe\.yaml:5:12: error: dependency "data\/secret\.txt" of stage "read" is really .*secret\.txt, outside the workspace/);
  assert.match(r.stderr, /hint: list the directory it lies in under read_only/);

  // An output directory that is a link to elsewhere would write there.
  const ws2 = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  w:\n    cmd: echo x > ${{ outs.f }}\n    outs: { f: res/x }\n' });
  symlinkSync(outside, join(ws2, 'res'));
  const w = dfwe(ws2, ['status']);
  assert.equal(w.code, 2);
  assert.match(w.stderr, /dfwe\.yaml:5:\d+: error: output "f" of stage "w" \(res\/x\) would be written in .*, outside the workspace/);
  assert.equal(listFiles(outside).join(), 'secret.txt', 'nothing was written outside');

  // Said on purpose, it runs; a link that stays inside the workspace needs nothing.
  write(ws, 'dfwe.yaml', yaml(`allow_outside: [${outside}]\n`));
  const ok = dfwe(ws, ['run']);
  assert.equal(ok.code, 0, ok.stderr);
  symlinkSync(join(ws, 'inside'), join(ws, 'alias'));
  write(ws, 'dfwe.yaml', 'version: 1\nstages:\n  a: { cmd: "cat alias/ok.txt > res/a", deps: [alias/ok.txt], outs: { f: res/a } }\n');
  assert.equal(dfwe(ws, ['run']).code, 0);
});

test('kill -9 of the engine or of a stage at random moments loses no committed result and serves nothing partial', async () => {
  // The short version; `npm run bench -- kills` does 60.
  const s = await killLoop(8, 7);
  assert.equal(s.kills, 8);
  assert.ok(s.engine_kills > 0 && s.stage_kills > 0, JSON.stringify(s));
  assert.ok(s.records_checked > 0, JSON.stringify(s));
  assert.equal(s.lost_records, 0);
  assert.equal(s.changed_records, 0);
  assert.equal(s.corrupt_objects, 0);
  assert.equal(s.final_outputs_match, true);
});

test('adversarial faults at random moments lose, change, touch outside and crash nothing', async () => {
  // The short version; `npm run bench -- reliability` does 20 rounds. Every fault class, issue 23's included.
  const s = await adversarial(2, 11);
  assert.deepEqual(s.rounds, { concurrent_versions: 2, gc_during_run: 2, symlinked_outputs: 2, background_children: 2, user_files: 2, tampered_records: 2, hostile_names: 2, history_lines: 2, outside_checkpoints: 2, changes_beside_a_snapshot: 2 });
  assert.deepEqual({ lost: s.lost, changed: s.changed, outside_touched: s.outside_touched, crashes: s.crashes }, { lost: 0, changed: 0, outside_touched: 0, crashes: 0 }, s.examples.join('\n'));
});

test('odd characters in sweep values: safe default paths, distinct nodes, and quote() for commands', () => {
  const values = ['a b', 'a_b', 'ü/..', '../../x', 'tab\there', `q'uote"`, '$(touch pwned)', '*'];
  const ws = workspace({
    'dfwe.yaml': `version: 1
params: { names: ${JSON.stringify(values)} }
sweep: { n: "\${{ params.names }}" }
stages:
  c:
    cmd: printf '%s' \${{ quote(n) }} > \${{ outs.f }}
    outs: { f: ~ }
  all:
    cmd: printf '%s|' \${{ quote(params.names) }} > \${{ outs.f }}
    outs: { f: ~ }
`,
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const written = listFiles(join(ws, 'out/c'));
  assert.equal(written.length, values.length, written.join('\n'));
  for (const p of written) assert.match(p, /^[\p{L}\p{N}._,=+@%~/-]+$/u, `${p} is shell-safe`);
  assert.deepEqual(written.map((p) => readFileSync(join(ws, 'out/c', p), 'utf8')).sort(), [...values].sort());
  assert.equal(readFileSync(join(ws, 'out/all/f'), 'utf8'), values.join('|') + '|');
  assert.equal(existsSync(join(ws, 'pwned')), false, 'no value ran as a command');
});
