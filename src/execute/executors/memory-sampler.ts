import { readdirSync, readFileSync } from 'node:fs';

/*
 * Peak memory of running stages, read from /proc: Node cannot wait4() its children, so the
 * kernel's own maximum-RSS accounting of a child is out of reach. Instead one timer, shared by
 * every running stage, scans /proc (≈0.6 ms for 60 processes) and adds up, per process group, the
 * peak resident set (VmHWM) of each member alive at that moment; a stage's peak is the largest such
 * sum. VmHWM keeps each process's own peak between samples, so a single-process stage's figure is
 * exact as of its last sample; a stage that ends before it has lived one interval has none. Elsewhere
 * (no /proc) nothing is measured.
 */

const INTERVAL_MS = 50;

const tracked = new Map<number, { peak: number; since: number }>();
let timer: NodeJS.Timeout | undefined;

function sample(): void {
  // Only once a stage has lived an interval: a run of short stages (thousands of 10 ms commands)
  // kept the timer going and paid a scan of /proc every 50 ms for stages it could never catch.
  const due = performance.now() - INTERVAL_MS;
  let old = false;
  for (const t of tracked.values()) if (t.since <= due) old = true;
  if (!old) return;
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return;
  }
  const sums = new Map<number, number>();
  for (const n of names) {
    if (n.charCodeAt(0) < 48 || n.charCodeAt(0) > 57) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may itself hold spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 3);
      const pgrp = Number(fields[2]);
      if (!tracked.has(pgrp) || fields[0] === 'Z') continue;
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${n}/status`, 'utf8'));
      if (hwm) sums.set(pgrp, (sums.get(pgrp) ?? 0) + Number(hwm[1]) * 1024);
    } catch {
      // exited meanwhile
    }
  }
  for (const [pgrp, sum] of sums) {
    const t = tracked.get(pgrp)!;
    if (sum > t.peak) t.peak = sum;
  }
}

/** Watch a process group until `stop`, which returns its peak resident memory in bytes (undefined: never sampled). */
export function trackMemory(pgid: number): { stop(): number | undefined } {
  const entry = { peak: 0, since: performance.now() };
  tracked.set(pgid, entry);
  if (!timer) {
    timer = setInterval(sample, INTERVAL_MS);
    timer.unref();
  }
  return {
    stop() {
      if (tracked.get(pgid) === entry) tracked.delete(pgid);
      if (tracked.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
      }
      return entry.peak > 0 ? entry.peak : undefined;
    },
  };
}
