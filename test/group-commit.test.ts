import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GroupCommit } from '../src/cache/group-commit.js';

test('group commit: files joined in one turn are made durable together; a missing one is skipped, a broken path fails its batch with its code', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-gc-'));
  for (const f of ['a', 'b', 'c']) writeFileSync(join(dir, f), f);
  const commits = new GroupCommit();
  await Promise.all([commits.durable([join(dir, 'a'), join(dir, 'b')]), commits.durable([join(dir, 'c'), join(dir, 'gone')])]);
  await assert.rejects(commits.durable([join(dir, 'a', 'not-a-dir')]), (err: NodeJS.ErrnoException) => err.code === 'ENOTDIR');
  await commits.durable([join(dir, 'b')]); // the next batch after a failed one
});

test('group commit: an idle committer does not keep the process alive', () => {
  const module = fileURLToPath(new URL('../src/cache/group-commit.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-gc-'));
  writeFileSync(join(dir, 'a'), 'a');
  const script = `import { GroupCommit } from ${JSON.stringify(module)}; await new GroupCommit().durable([${JSON.stringify(join(dir, 'a'))}]); console.log('durable');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.signal, null, 'it exited by itself');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'durable');
});
