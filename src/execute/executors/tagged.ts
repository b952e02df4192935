import { readdirSync, readFileSync } from 'node:fs';
import { LAUNCH_TAG } from '../../executor.js';

/*
 * Processes found by the launch tag in their environment (LAUNCH_TAG, see executor.ts). A stage's
 * process group is how dfwe stops it, but the group is known only once its starter says the pid:
 * a starter killed in between, or an engine killed before it kept the handle in the lease, leaves
 * a stage no one can name, still writing its outputs. Every process of a stage inherits the tag,
 * so it can still be found, by the engine that lost it or by the run that breaks the dead run's
 * lease.
 */

const OWN_GROUP = groupOf('self');

/** Processes on this machine whose tag `matches`, with their process groups. Zombies have no environment and are not listed. */
function tagged(matches: (tag: string) => boolean): { pid: number; pgid: number | undefined }[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return []; // no /proc: nothing can be found this way
  }
  const found: { pid: number; pgid: number | undefined }[] = [];
  const prefix = `${LAUNCH_TAG}=`;
  for (const p of pids) {
    let env: string;
    try {
      // latin1: only the tag's ASCII is compared; other bytes pass through unchanged.
      env = readFileSync(`/proc/${p}/environ`, 'latin1');
    } catch {
      continue; // exited meanwhile, or another user's
    }
    const i = env.startsWith(prefix) ? -1 : env.indexOf(`\0${prefix}`);
    if (i < 0 && !env.startsWith(prefix)) continue;
    const at = i + 1;
    const end = env.indexOf('\0', at);
    const value = env.slice(at + prefix.length, end < 0 ? undefined : end);
    if (matches(value)) found.push({ pid: Number(p), pgid: groupOf(p) });
  }
  return found;
}

function groupOf(pid: string): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * SIGKILL every process whose tag `matches`, with its process group, and return once none runs
 * (or after `waitMs`: a process in uninterruptible sleep). Synchronous: its callers are about to
 * take over the paths those processes write. Returns how many were found.
 */
export function stopTagged(matches: (tag: string) => boolean, waitMs = 10_000): number {
  const seen = new Set<number>();
  const until = Date.now() + waitMs;
  for (;;) {
    const live = tagged(matches);
    if (live.length === 0 || Date.now() > until) return seen.size;
    for (const { pid, pgid } of live) {
      seen.add(pid);
      for (const target of pgid !== undefined && pgid !== OWN_GROUP && pgid > 1 ? [-pgid, pid] : [pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    sleepSync(10);
  }
}
