import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { keyOf } from '../util/hash.js';
import { processAlive } from '../util/process.js';

/*
 * Per-key leases: a lock file per node key, created with O_EXCL, holding who owns it. Two runs
 * in one workspace (or Slurm jobs on a shared filesystem) cooperate: the second waits for the
 * first and then finds its result in the cache. There is no single lock rewritten per node.
 * A lease whose owner is a dead process on this host, or whose heartbeat (mtime) is older than
 * STALE_MS, is broken automatically.
 */

const HEARTBEAT_MS = 10_000;
const STALE_MS = 60_000;

/** The lease that guards a workspace output path (and so the node that writes it). */
export function outputLeaseName(workspace: string, relPath: string): string {
  return `out-${keyOf([workspace, relPath])}`;
}

export interface LeaseHolder {
  pid: number;
  host: string;
  since: string;
  what: string;
  /** Process group of the stage running under this lease: killed when the lease is broken. */
  group?: number;
  /** Slurm job running the stage: cancelled when the lease is broken. */
  slurmJob?: string;
}

export interface Lease {
  release(): void;
  /** Record how to stop the stage (process group, Slurm job), so a run that breaks this lease can. */
  setHandle(handle: { group?: number; slurmJob?: string }): void;
}

export class LeaseManager {
  private readonly held = new Map<string, NodeJS.Timeout>();
  private dirMade = false;

  constructor(private readonly dir: string) {}

  private path(name: string): string {
    return join(this.dir, `${name}.lock`);
  }

  /** The holder: the first JSON line, plus later lines (how to stop the stage) merged in. */
  holder(name: string): LeaseHolder | undefined {
    try {
      const lines = readFileSync(this.path(name), 'utf8').split('\n').filter(Boolean);
      return Object.assign({}, ...lines.map((l) => JSON.parse(l) as Partial<LeaseHolder>)) as LeaseHolder;
    } catch {
      return undefined;
    }
  }

  /** Try once. Returns the lease, or the live holder. */
  tryAcquire(name: string, what: string): Lease | LeaseHolder {
    if (!this.dirMade) {
      mkdirSync(this.dir, { recursive: true });
      this.dirMade = true;
    }
    const p = this.path(name);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(p, 'wx');
        const me: LeaseHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), what };
        writeSync(fd, JSON.stringify(me));
        closeSync(fd);
        const beat = setInterval(() => {
          const now = new Date();
          try {
            utimesSync(p, now, now);
          } catch {
            // the lease was broken by someone who judged us dead; nothing to refresh
          }
        }, HEARTBEAT_MS);
        beat.unref();
        this.held.set(name, beat);
        return {
          release: () => this.release(name),
          // Appended, not rewritten: one write to a file only we own.
          setHandle: (handle) => appendFileSync(p, `\n${JSON.stringify(handle)}`),
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const h = this.holder(name);
      if (h && !this.isStale(p, h)) return h;
      // The owner died (kill -9, OOM, lost node) but its stage may still run and write outputs
      // that we are about to recompute: stop it first.
      if (h?.group && h.host === hostname()) {
        try {
          process.kill(-h.group, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (h?.slurmJob) spawnSync('scancel', [h.slurmJob], { stdio: 'ignore', timeout: 30_000 });
      // Break a stale lease: rename it away first so two breakers never delete a fresh one.
      const grave = `${p}.stale-${process.pid}-${randomBytes(3).toString('hex')}`;
      try {
        renameSync(p, grave);
        rmSync(grave, { force: true });
      } catch {
        // someone else broke or released it; try again
      }
    }
    return this.holder(name) ?? { pid: -1, host: '?', since: '?', what };
  }

  isStale(p: string, h: LeaseHolder): boolean {
    if (h.host === hostname() && !processAlive(h.pid)) return true;
    try {
      return Date.now() - statSync(p).mtimeMs > STALE_MS;
    } catch {
      return true;
    }
  }

  /** Wait until the lease is ours; `onWait` hears who holds it (once per holder). */
  async acquire(name: string, what: string, onWait?: (h: LeaseHolder) => void, signal?: AbortSignal): Promise<Lease> {
    let told: string | undefined;
    let delay = 20;
    for (;;) {
      const r = this.tryAcquire(name, what);
      if ('release' in r) return r;
      const who = `${r.pid}@${r.host}`;
      if (who !== told) {
        onWait?.(r);
        told = who;
      }
      if (signal?.aborted) throw new Error('aborted while waiting for a lease');
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 500);
    }
  }

  private release(name: string): void {
    const beat = this.held.get(name);
    if (beat) clearInterval(beat);
    this.held.delete(name);
    const h = this.holder(name);
    // Only remove our own lease: if ours was broken as stale, the file now belongs to another run.
    if (h && h.pid === process.pid && h.host === hostname()) rmSync(this.path(name), { force: true });
  }

  releaseAll(): void {
    for (const name of [...this.held.keys()]) this.release(name);
  }
}
