import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { round } from './util.js';

/*
 * What a file's creation costs after many files were removed nearby. ext4 without a journal skips
 * an inode freed in the last minute (five while its inode table block is unwritten) when it picks
 * the next one, and scans the rest of the block group to find one that is not: so every file made
 * after a mass removal, by anyone, costs a scan. This is why a node's lease and log free no inode
 * (src/cache/lease.ts, src/execute/spare-logs.ts) and why the engine bench moves trees aside rather
 * than removing them before a timed run. Run only when named (`npm run bench -- inodes`): it leaves
 * the filesystem slow for minutes.
 */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Mean microseconds to create `n` empty files in `dir`. */
function creates(dir: string, n: number, prefix: string): number {
  const t = performance.now();
  for (let i = 0; i < n; i++) closeSync(openSync(join(dir, `${prefix}${i}`), 'wx'));
  return round(((performance.now() - t) * 1000) / n, 1);
}

/** The mount holding `path` and, for ext4, whether it has a journal (its journal thread's name, or none). */
function filesystemOf(path: string): { mount: string; type: string; device: string; ext4_journal?: string } {
  const mounts = readFileSync('/proc/mounts', 'utf8').trim().split('\n').map((l) => l.split(' '));
  const best = mounts.filter(([, at]) => path === at || path.startsWith(at === '/' ? '/' : `${at}/`)).sort((a, b) => b[1]!.length - a[1]!.length)[0]!;
  const [device, mount, type] = best as [string, string, string];
  const task = `/sys/fs/ext4/${basename(device)}/journal_task`;
  return { mount, type, device, ...(type === 'ext4' && existsSync(task) ? { ext4_journal: readFileSync(task, 'utf8').trim() } : {}) };
}

export async function benchInodeReuse(removed = 20_000): Promise<unknown> {
  const root = mkdtempSync(join(tmpdir(), 'dfwe-bench-inodes-'));
  const fs = filesystemOf(root);
  const churn = join(root, 'churn');
  const probe = join(root, 'probe');
  mkdirSync(churn);
  mkdirSync(probe);
  const before = creates(probe, 2000, 'before-');
  // Files made, then removed, as a tree is by `rm -rf` (or a run's leases and logs, released as
  // other nodes' were made): each a distinct inode. (One made and removed at once is reused by the
  // next within the same second, which is not yet "before now".)
  for (let i = 0; i < removed; i++) closeSync(openSync(join(churn, `f${i}`), 'wx'));
  await sleep(1100);
  for (let i = 0; i < removed; i++) unlinkSync(join(churn, `f${i}`));
  const t0 = performance.now();
  const after: { seconds_after: number; create_us: number }[] = [];
  for (const at of [0, 2, 10, 30, 70]) {
    await sleep(Math.max(0, at * 1000 - (performance.now() - t0)));
    after.push({ seconds_after: at, create_us: creates(probe, 500, `after${at}-`) });
  }
  // Then as a run made and released lease files: one made and removed at a time, for 10 s, each
  // second's creations timed (after the removals above: read it as what follows them).
  const steady = join(root, 'steady');
  mkdirSync(steady);
  const made_and_removed_each_second: { second: number; files: number; create_us: number }[] = [];
  let k = 0;
  for (let second = 0; second < 10; second++) {
    const end = performance.now() + 1000;
    let us = 0;
    let files = 0;
    while (performance.now() < end) {
      for (let i = 0; i < 50; i++, k++, files++) {
        const p = join(steady, `s${k}`);
        const t = performance.now();
        closeSync(openSync(p, 'wx'));
        us += (performance.now() - t) * 1000;
        unlinkSync(p);
      }
      await sleep(2);
    }
    made_and_removed_each_second.push({ second, files, create_us: round(us / files, 1) });
  }
  // Left for the bench's own temporary directory to remove when it exits: removing it here would be another mass removal.
  return { filesystem: fs, create_us_before: before, files_made_and_removed: removed, create_us_after_removals: after, made_and_removed_each_second };
}
