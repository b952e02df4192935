import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaseManager, type Lease, type LeaseHolder } from '../src/cache/lease.js';
import { waitFor } from './helpers.js';

/*
 * A node that reads many outputs takes their read leases as one set (src/cache/lease.ts). These
 * tests hold the set to the promises a token per name kept: writers of its names are kept out,
 * writers of other names are not, a live writer elsewhere is waited for, a dead reader is not.
 */

const LEASE_MODULE = new URL('../src/cache/lease.js', import.meta.url).href;
const names = Array.from({ length: 12 }, (_, i) => `out-name${i}`);

const isLease = (r: Lease | LeaseHolder): r is Lease => 'release' in r;

/** A second process that runs `body` with `leases` (a LeaseManager on `dir`), then prints "ready" and waits for its stdin to close. */
function otherProcess(dir: string, body: string) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { LeaseManager } from ${JSON.stringify(LEASE_MODULE)};
    const leases = new LeaseManager(${JSON.stringify(dir)}, 'the other process');
    ${body}
    process.stdout.write('ready\\n');
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  return { child, ready: () => waitFor(() => out.includes('ready'), 20_000, 'the other process to take its lease'), exited };
}

test('a read set keeps writers of its names out, and only of its names, until it is released', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-leases-'));
  const reader = new LeaseManager(dir, 'the reading run');
  const writer = new LeaseManager(dir, 'the writing run');
  const set = await reader.acquireReadSet(names);
  assert.equal(readdirSync(join(dir, 'readers', '.sets')).length, 1, 'one file for the whole set');
  const blocked = writer.tryWrite(names[7]!, 'a node');
  assert.ok(!isLease(blocked), 'a writer of a name in the set is kept out');
  assert.equal(blocked.what, 'the reading run');
  const other = writer.tryWrite('out-elsewhere', 'a node');
  assert.ok(isLease(other), 'a writer of another name is not');
  other.release();
  set.release();
  const after = writer.tryWrite(names[7]!, 'a node');
  assert.ok(isLease(after), 'released: the writer gets it');
  after.release();
  reader.close();
  writer.close();
});

test('a read set waits for a live writer of one of its names in another process, then is granted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-leases-'));
  const holder = otherProcess(dir, `const l = leases.tryWrite(${JSON.stringify(names[4])}, 'writing name4'); if (!('release' in l)) process.exit(3);`);
  await holder.ready();
  const reader = new LeaseManager(dir, 'the reading run');
  const waitedOn: LeaseHolder[] = [];
  let granted = false;
  const pending = reader.acquireReadSet(names, (h) => waitedOn.push(h)).then((l) => {
    granted = true;
    return l;
  });
  await waitFor(() => waitedOn.length > 0, 20_000, 'the set to wait on the writer');
  assert.equal(waitedOn[0]!.pid, holder.child.pid);
  assert.equal(granted, false);
  assert.deepEqual(readdirSync(join(dir, 'readers', '.sets')), [], 'a set that waits is withdrawn meanwhile');
  holder.child.stdin.end(); // the writer finishes: its lease goes with it
  await holder.exited;
  const set = await pending;
  assert.equal(readdirSync(join(dir, 'readers', '.sets')).length, 1);
  set.release();
  reader.close();
});

test('a read set left by a process that died does not keep a writer out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-leases-'));
  const dead = otherProcess(dir, `await leases.acquireReadSet(${JSON.stringify(names)});`);
  await dead.ready();
  dead.child.kill('SIGKILL');
  await dead.exited;
  assert.equal(readdirSync(join(dir, 'readers', '.sets')).length, 1, 'the dead reader left its set');
  const writer = new LeaseManager(dir, 'the writing run');
  const lease = writer.tryWrite(names[0]!, 'a node');
  assert.ok(isLease(lease), 'the dead reader is not waited for');
  assert.deepEqual(readdirSync(join(dir, 'readers', '.sets')), [], 'and its set is removed');
  lease.release();
  writer.close();
  assert.ok(!existsSync(join(dir, `${names[0]}.lock`)));
});
