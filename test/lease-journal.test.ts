import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, linkSync, mkdirSync, openSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { JOURNAL_PREFIX, LeaseManager, type Lease, type LeaseHolder } from '../src/cache/lease.js';
import { dfwe, waitFor, workspace } from './helpers.js';

/*
 * A writer lease is a hard link to its process's lease journal (src/cache/lease.ts): taking and
 * releasing one creates and frees no inode. These tests hold the journal to what a file per lease
 * promised: each lease says its own holder and stage, a dead holder's stage is the one stopped.
 */

const LEASE_MODULE = new URL('../src/cache/lease.js', import.meta.url).href;
const isLease = (r: Lease | LeaseHolder): r is Lease => 'release' in r;
const files = (dir: string): string[] => readdirSync(dir).filter((n) => statSync(join(dir, n)).isFile()).sort();
const journals = (dir: string): string[] => files(dir).filter((n) => n.startsWith(JOURNAL_PREFIX));
const leaseDir = (): string => mkdtempSync(join(tmpdir(), 'dfwe-journal-'));

test('writer leases are links to one journal of the process: no file made or removed per lease', () => {
  const dir = leaseDir();
  const m = new LeaseManager(dir, 'a run');
  const held = Array.from({ length: 30 }, (_, i) => m.tryWrite(`out-n${i}`, `node ${i}`));
  assert.ok(held.every(isLease));
  const [journal, ...more] = journals(dir);
  assert.equal(more.length, 0, 'one journal');
  const ino = statSync(join(dir, journal!)).ino;
  for (let i = 0; i < 30; i++) assert.equal(statSync(join(dir, `out-n${i}.lock`)).ino, ino, `lease ${i} is the journal`);
  for (const l of held) (l as Lease).release();
  assert.deepEqual(files(dir), [journal], 'released: only the journal is left');
  assert.equal(statSync(join(dir, journal!)).ino, ino, 'the same file');
  m.close();
  assert.deepEqual(files(dir), [], 'closed: nothing is left');
});

test("each lease in a journal says its own holder: what it was taken for and its stage's handle", () => {
  const dir = leaseDir();
  const m = new LeaseManager(dir, 'a run');
  const a = m.tryWrite('out-a', 'node a') as Lease;
  const b = m.tryWrite('out-b', 'node b') as Lease;
  a.setHandle({ executor: 'local', id: 111 });
  b.setHandle({ executor: 'local', id: 222 });
  const other = new LeaseManager(dir, 'another run');
  assert.equal(other.holder('out-a')?.what, 'node a');
  assert.deepEqual(other.holder('out-a')?.job, { executor: 'local', id: 111 });
  assert.equal(other.holder('out-b')?.what, 'node b');
  assert.deepEqual(other.holder('out-b')?.job, { executor: 'local', id: 222 });
  assert.equal(other.holder('out-b')?.pid, process.pid);
  // Taken again: the stage of its last taking is not its stage any more.
  a.release();
  const again = m.tryWrite('out-a', 'node a, again') as Lease;
  assert.equal(other.holder('out-a')?.what, 'node a, again');
  assert.equal(other.holder('out-a')?.job, undefined);
  again.release();
  b.release();
  m.close();
  other.close();
});

test("a dead process's leases are broken, and the stage stopped is the one of the lease broken", async () => {
  const dir = leaseDir();
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { LeaseManager } from ${JSON.stringify(LEASE_MODULE)};
    const leases = new LeaseManager(${JSON.stringify(dir)}, 'the dying run');
    const a = leases.tryWrite('out-a', 'node a');
    const b = leases.tryWrite('out-b', 'node b');
    b.setHandle({ executor: 'local', id: 222 });
    a.setHandle({ executor: 'local', id: 111 }); // the journal's last handle is not b's
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  await waitFor(() => out.includes('ready'), 20_000, 'the other process to take its leases');
  const cancelled: LeaseHolder[] = [];
  const m = new LeaseManager(dir, 'the next run', (h) => cancelled.push(h));
  const held = m.tryWrite('out-b', 'node b');
  assert.ok(!isLease(held), 'alive: its lease is kept');
  assert.equal(held.pid, child.pid);
  child.kill('SIGKILL');
  await exited;
  const taken = await m.acquire('out-b', 'node b', 'write');
  assert.equal(taken.tookOver, true, 'dead: its lease is broken');
  assert.deepEqual(cancelled.map((h) => h.job), [{ executor: 'local', id: 222 }], "node b's stage, not node a's");
  taken.release();
  m.close();
});

test("a lease released after its manager closed touches no descriptor of someone else's", () => {
  const dir = leaseDir();
  const m = new LeaseManager(dir, 'a run');
  const lease = m.tryWrite('out-a', 'node a') as Lease;
  m.close();
  // The journal's descriptor number is free again: a file opened now may be given it.
  const other = openSync(join(dir, 'other'), 'w');
  try {
    lease.setHandle({ executor: 'local', id: 1 });
    lease.release();
    assert.ok(fstatSync(other).isFile(), 'the file opened since is still open');
    assert.equal(readFileSync(join(dir, 'other'), 'utf8'), '', 'and nothing was written to it');
  } finally {
    closeSync(other);
  }
});

test('a journal full of leases takes no more; it is removed once its last lease is released', () => {
  const dir = leaseDir();
  const m = new LeaseManager(dir, 'a run');
  const held = Array.from({ length: 1200 }, (_, i) => ({ name: `out-n${i}`, lease: m.tryWrite(`out-n${i}`, `node ${i}`) as Lease }));
  const byFile = new Map<number, typeof held>();
  for (const h of held) {
    const ino = statSync(join(dir, `${h.name}.lock`)).ino;
    byFile.set(ino, [...(byFile.get(ino) ?? []), h]);
  }
  assert.equal(byFile.size, 2, 'a second journal past the first one\'s lines');
  assert.equal(journals(dir).length, 2);
  const [first, second] = [...byFile.values()];
  assert.ok(first!.length < 1000 && first!.length > 900, `the first journal took ${first!.length}`);
  for (const h of first!) h.lease.release();
  assert.equal(journals(dir).length, 1, 'the first is removed with its last lease');
  assert.equal(new LeaseManager(dir, 'another run').holder('out-n1199')?.what, 'node 1199');
  for (const h of second!) h.lease.release();
  m.close();
  assert.deepEqual(files(dir), []);
});

test('a journal whose last line is being written, and a lease file of an older dfwe, still name their holders', () => {
  const dir = leaseDir();
  mkdirSync(dir, { recursive: true });
  const me = { pid: 4194305, host: hostname(), since: 'then' };
  writeFileSync(join(dir, 'out-a.lock'), `${JSON.stringify({ ...me, what: 'a run', journal: 1 })}\n${JSON.stringify({ lease: 'out-a', what: 'node a' })}\n{"lease":"out-a","job":{"exec`);
  writeFileSync(join(dir, 'out-b.lock'), `${JSON.stringify({ ...me, what: 'node b' })}\n${JSON.stringify({ job: { executor: 'local', id: 7 } })}`);
  const m = new LeaseManager(dir, 'a run');
  assert.equal(m.holder('out-a')?.what, 'node a');
  assert.equal(m.holder('out-a')?.pid, me.pid);
  assert.equal(m.holder('out-b')?.what, 'node b');
  assert.deepEqual(m.holder('out-b')?.job, { executor: 'local', id: 7 });
  m.close();
});

test("a run of silent stages makes one log file and one lease journal, not one of each per node", () => {
  // Each stage says the inode of its log (its stderr, as its stdout, goes there) and of its output's lease.
  const stage = (i: number): string =>
    `  s${i}:\n    cmd: ${i === 0 ? '' : `cat \${{ stages.s${i - 1}.outs.f }} > /dev/null; `}stat -L -c %i /proc/self/fd/2 cache/locks/*.lock > out/s${i}\n    outs: { f: out/s${i} }\n`;
  const ws = workspace({ 'dfwe.yaml': `version: 1\nstages:\n${[0, 1, 2, 3, 4].map(stage).join('')}`, 'out/.keep': '' });
  const r = dfwe(ws, ['run', '--jobs', '1']);
  assert.equal(r.code, 0, r.stderr);
  const seen = [0, 1, 2, 3, 4].map((i) => readFileSync(join(ws, `out/s${i}`), 'utf8').trim().split('\n'));
  assert.ok(seen.every((s) => s.length === 2), JSON.stringify(seen));
  assert.equal(new Set(seen.map((s) => s[0])).size, 1, `one log file: ${JSON.stringify(seen)}`);
  assert.equal(new Set(seen.map((s) => s[1])).size, 1, `one lease journal: ${JSON.stringify(seen)}`);
});

test("gc removes a dead run's lease journal, and leaves a live one's", () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo a > out/a\n    outs: { f: out/a }\n', 'out/.keep': '' });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const locks = join(ws, 'cache', 'locks');
  // A run killed while it held a lease: its journal, the lock linked to it, both 10 minutes old.
  const dead = join(locks, `${JOURNAL_PREFIX}4194305-0a0b0c0d0`);
  writeFileSync(dead, `${JSON.stringify({ pid: 4194305, host: hostname(), since: 'then', what: 'a run', journal: 1 })}\n${JSON.stringify({ lease: 'out-x', what: 'x' })}\n`);
  linkSync(dead, join(locks, 'out-x.lock'));
  const then = new Date(Date.now() - 600_000);
  utimesSync(dead, then, then);
  // A live one: this process's, refreshed by its heartbeat.
  const live = new LeaseManager(locks, 'a live run');
  const held = live.tryWrite('out-y', 'y') as Lease;
  const r = dfwe(ws, ['gc']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(journals(locks).filter((j) => j !== basename(dead)).length, 1, 'the live journal stays');
  assert.ok(!journals(locks).includes(basename(dead)), 'the dead one is removed');
  held.release();
  live.close();
});
