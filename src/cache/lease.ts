import { appendFileSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserError } from '../diagnostics.js';
import { describeFsError, isEnvironmentError } from '../util/fs-safe.js';
import { keyOf } from '../util/hash.js';
import { processAlive, processStart } from '../util/process.js';
import { Heartbeat } from './heartbeat.js';

/*
 * Leases: lock files in the cache, so that runs in one workspace (or on several hosts of a
 * shared filesystem) cooperate. Each name is a reader-writer lease:
 *   NAME.lock        the writer: one at a time (a node writing an output path, gc)
 *   NAME.r/TOKEN     readers: any number (nodes reading that output path, runs using the cache)
 * Each side creates its own file first and then looks for the other, so of a writer and a reader
 * that arrive together at least one sees the other and waits. A writer holds its file while it
 * waits for readers to finish, so new readers wait behind it.
 *
 * A lease file appears whole or not at all (written under a temp name, then hard-linked into
 * place): a full disk never leaves an empty lock that others would wait on. A holder on this host
 * is alive exactly when its pid is (with the same start time, against pid reuse); one on another
 * host is alive while its heartbeat (the file's mtime) is younger than STALE_MS.
 */

const STALE_MS = 60_000;

/** The lease that guards a workspace output path (and so the node that writes it). */
export function outputLeaseName(workspace: string, relPath: string): string {
  return `out-${keyOf([workspace, relPath])}`;
}

/** Runs hold it to read; gc holds it to write. */
export const CACHE_LEASE = 'cache';

export interface LeaseHolder {
  pid: number;
  host: string;
  /** The holder process's start time (Linux), so a reused pid is not taken for the holder. */
  start?: string;
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

export type LeaseMode = 'read' | 'write';

/** The cache cannot be written here (read-only filesystem, no permission). */
export class CacheNotWritable extends UserError {
  constructor(dir: string, err: NodeJS.ErrnoException) {
    super(`the cache cannot be written (${dir}: ${describeFsError(err)})`);
  }
}

function parseHolder(text: string): LeaseHolder | undefined {
  try {
    const parts = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Partial<LeaseHolder>);
    const h = Object.assign({}, ...parts) as Partial<LeaseHolder>;
    return typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.what === 'string' ? (h as LeaseHolder) : undefined;
  } catch {
    return undefined;
  }
}

export class LeaseManager {
  private readonly heartbeat = new Heartbeat();
  private readonly me: Omit<LeaseHolder, 'since' | 'what'>;
  private dirMade = false;

  constructor(private readonly dir: string) {
    this.me = { pid: process.pid, host: hostname(), start: processStart(process.pid) };
  }

  private writerPath(name: string): string {
    return join(this.dir, `${name}.lock`);
  }

  private readersDir(name: string): string {
    return join(this.dir, `${name}.r`);
  }

  /** Create `path` holding our holder line, atomically; false when it exists. */
  private create(path: string, what: string): boolean {
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    const line = JSON.stringify({ ...this.me, since: new Date().toISOString(), what });
    try {
      if (!this.dirMade) {
        mkdirSync(this.dir, { recursive: true });
        this.dirMade = true;
      }
      writeFileSync(tmp, line);
      try {
        linkSync(tmp, path);
      } catch (err) {
        // A reader directory not made yet: make it, once.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        mkdirSync(dirname(path), { recursive: true });
        linkSync(tmp, path);
      }
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') throw new CacheNotWritable(this.dir, err as NodeJS.ErrnoException);
      if (isEnvironmentError(err)) throw new UserError(`cannot take a lease in ${this.dir}: ${describeFsError(err)}`, 1);
      throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** The holder of a lease file: absent, malformed (never whole: garbage to break) or a holder. */
  private read(path: string): LeaseHolder | 'absent' | 'malformed' {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return 'absent';
    }
    return parseHolder(text) ?? 'malformed';
  }

  /** The holder of NAME's writer lease, if there is one. */
  holder(name: string): LeaseHolder | undefined {
    const h = this.read(this.writerPath(name));
    return typeof h === 'string' ? undefined : h;
  }

  isStale(path: string, h: LeaseHolder | 'malformed'): boolean {
    if (h === 'malformed') return true;
    if (h.host === this.me.host) {
      if (!processAlive(h.pid)) return true;
      const start = h.start !== undefined ? processStart(h.pid) : undefined;
      return start !== undefined && start !== h.start;
    }
    try {
      return Date.now() - statSync(path).mtimeMs > STALE_MS;
    } catch {
      return true;
    }
  }

  /** Remove a dead holder's lease, first stopping what it left running (its stage may still write). */
  private breakStale(path: string, h: LeaseHolder | 'malformed'): void {
    if (h !== 'malformed') {
      if (h.group && h.host === this.me.host) {
        try {
          process.kill(-h.group, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (h.slurmJob) spawnSync('scancel', [h.slurmJob], { stdio: 'ignore', timeout: 30_000 });
    }
    // Renamed away first, so two runs breaking it at once never delete a fresh one.
    const grave = `${path}.stale-${process.pid}-${randomBytes(3).toString('hex')}`;
    try {
      renameSync(path, grave);
      rmSync(grave, { force: true });
    } catch {
      // someone else broke or released it
    }
  }

  /** Take the writer file once: ours (true), or its live holder. */
  private tryWriter(name: string, what: string): true | LeaseHolder {
    const p = this.writerPath(name);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.create(p, what)) return true;
      const h = this.read(p);
      if (h === 'absent') continue;
      if (h !== 'malformed' && !this.isStale(p, h)) return h;
      this.breakStale(p, h);
    }
    return this.holder(name) ?? { pid: -1, host: '?', since: '?', what };
  }

  /** Live readers of NAME other than this process's own; stale ones are removed. */
  private liveReaders(name: string): LeaseHolder[] {
    const dir = this.readersDir(name);
    let tokens: string[];
    try {
      tokens = readdirSync(dir);
    } catch {
      return [];
    }
    const live: LeaseHolder[] = [];
    for (const t of tokens) {
      const p = join(dir, t);
      const h = this.read(p);
      if (h === 'absent') continue;
      if (h === 'malformed' || this.isStale(p, h)) rmSync(p, { force: true });
      else live.push(h);
    }
    return live;
  }

  private granted(path: string, writer: boolean): Lease {
    this.heartbeat.add(path);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.heartbeat.remove(path);
        // Only remove our own file: if ours was broken as stale, it may now belong to another run.
        const h = this.read(path);
        if (typeof h !== 'string' && h.pid === this.me.pid && h.host === this.me.host) rmSync(path, { force: true });
      },
      // Appended, not rewritten: one write to a file only we own.
      setHandle: (handle) => {
        if (writer) appendFileSync(path, `\n${JSON.stringify(handle)}`);
      },
    };
  }

  /**
   * Wait until the lease is ours in `mode`; `onWait` hears who holds it (once per holder).
   * Names must be taken in one global order (sorted) by every run, so no two runs deadlock.
   */
  async acquire(name: string, what: string, mode: LeaseMode, onWait?: (h: LeaseHolder) => void, signal?: AbortSignal): Promise<Lease> {
    let told: string | undefined;
    let delay = 20;
    const wait = async (h: LeaseHolder): Promise<void> => {
      const who = `${h.pid}@${h.host}`;
      if (who !== told) {
        onWait?.(h);
        told = who;
      }
      if (signal?.aborted) throw new Error('aborted while waiting for a lease');
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 500);
    };
    if (mode === 'write') {
      for (;;) {
        const r = this.tryWriter(name, what);
        if (r === true) break;
        await wait(r);
      }
      const lease = this.granted(this.writerPath(name), true);
      try {
        for (let readers = this.liveReaders(name); readers.length > 0; readers = this.liveReaders(name)) await wait(readers[0]!);
      } catch (err) {
        lease.release();
        throw err;
      }
      return lease;
    }
    for (;;) {
      const token = join(this.readersDir(name), `${process.pid}-${randomBytes(4).toString('hex')}`);
      this.create(token, what);
      const p = this.writerPath(name);
      let h = this.read(p);
      while (h === 'malformed' || (h !== 'absent' && this.isStale(p, h))) {
        this.breakStale(p, h);
        h = this.read(p);
      }
      if (h === 'absent' || (h.pid === this.me.pid && h.host === this.me.host)) return this.granted(token, false);
      rmSync(token, { force: true });
      await wait(h);
    }
  }

  /** The writer lease now, or the live holder (a writer or a reader) that keeps it from us. */
  tryWrite(name: string, what: string): Lease | LeaseHolder {
    const r = this.tryWriter(name, what);
    if (r !== true) return r;
    const lease = this.granted(this.writerPath(name), true);
    const readers = this.liveReaders(name);
    if (readers.length === 0) return lease;
    lease.release();
    return readers[0]!;
  }

  /** Before a long synchronous step (a big commit): heartbeats go on without the event loop. */
  keepAlive(): void {
    this.heartbeat.start();
  }

  close(): void {
    this.heartbeat.stop();
  }
}
