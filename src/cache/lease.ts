import { appendFileSync, closeSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { JobHandle } from '../executor.js';
import { UserError } from '../diagnostics.js';
import { describeFsError, isEnvironmentError } from '../util/fs-safe.js';
import { readTextIfAny, unlinkIfAny } from '../util/fsx.js';
import { keyOf } from '../util/hash.js';
import { processAlive, processStart } from '../util/process.js';
import { Heartbeat } from './heartbeat.js';

/*
 * Leases: lock files in the cache, so that runs in one workspace (or on several hosts of a
 * shared filesystem) cooperate. Each name is a reader-writer lease:
 *   NAME.lock              the writer: one at a time (a node writing an output path, gc)
 *   readers/NAME~TOKEN     readers: any number (nodes reading that output path, runs using the cache)
 * Each side creates its own file first and then looks for the other, so of a writer and a reader
 * that arrive together at least one sees the other and waits. A writer holds its file while it
 * waits for readers to finish, so new readers wait behind it.
 *
 * A node that reads many outputs (an aggregate of 10,000) takes their read leases as one set: a
 * file in readers/.sets listing the names, so it costs one file rather than a link and an unlink
 * per name. It is the same protocol with the set as the reader's file: the set appears first, then
 * the lock directory is listed for writers of any of its names; a writer lists the sets as it lists
 * a name's tokens.
 *
 * A lease file appears whole or not at all (written under a temp name, then hard-linked into
 * place): a full disk never leaves an empty lock that others would wait on. A holder on this host
 * is alive exactly when its pid is (with the same start time, against pid reuse); one on another
 * host is alive while its heartbeat (the file's mtime) is younger than STALE_MS.
 */

const STALE_MS = 60_000;
/** A lease file with no whole holder line yet is given this long before it counts as left behind. */
const MALFORMED_GRACE_MS = 2_000;
/** Below this many names, read leases are taken one by one (a set costs a file and a listing). */
export const READ_SET_MIN = 8;
/** The directory of read sets, beside the names' token directories (no lease name starts with '.'). */
const SETS = '.sets';
/** Who holds a lease file that has no whole holder line yet: it is being taken this moment. */
const TAKING: LeaseHolder = { pid: -1, host: '?', since: '?', what: 'a run that is taking it' };

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
  /** The job running the stage under this lease (its executor's handle): stopped when the lease is broken. */
  job?: JobHandle;
  /** The executor the holder launches stages with (a run's): where its launches are looked for when it dies. */
  executor?: string;
}

/** Stops what a dead holder left running, its job and any launch of its own; the executor registry knows how (src/execute/executors). */
export type JobCanceller = (holder: LeaseHolder) => void;

export interface Lease {
  /** The lease was taken over from a holder that died: what it guards may be that holder's half-done work. */
  readonly tookOver: boolean;
  release(): void;
  /** Record how to stop the stage (its executor's job handle), so a run that breaks this lease can. */
  setHandle(job: JobHandle): void;
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
    const h = Object.assign({}, ...parts) as Partial<LeaseHolder> & { group?: number; slurmJob?: string };
    // Written by dfwe before executors had handles: a process group, or a Slurm job.
    if (typeof h.group === 'number') h.job = { executor: 'local', id: h.group };
    if (typeof h.slurmJob === 'string') h.job = { executor: 'slurm', id: h.slurmJob };
    return typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.what === 'string' ? (h as LeaseHolder) : undefined;
  } catch {
    return undefined;
  }
}

/** The names in a directory; none when it is not there (no reader has used it yet: asked by a stat that does not throw, as readTextIfAny). */
function listed(dir: string): string[] {
  try {
    return statSync(dir, { throwIfNoEntry: false }) ? readdirSync(dir) : [];
  } catch {
    return [];
  }
}

export class LeaseManager {
  private readonly heartbeat = new Heartbeat();
  private readonly me: Omit<LeaseHolder, 'since' | 'what'>;
  private dirMade = false;
  /**
   * Reader tokens are hard links to this one file of ours, which says who we are: a token costs
   * one link, and one heartbeat refreshes them all (they share its mtime).
   */
  private readerTemplate: string | undefined;
  /**
   * Token names: a random part drawn once (pids repeat across hosts of a shared filesystem), then a
   * counter (drawing random bytes for each of 10,000 tokens was a tenth of a node's leases).
   */
  private readonly tokenPrefix = randomBytes(4).toString('hex');
  private tokens = 0;
  /** Read sets seen by this process's writers, by file name: a set's file never changes once in place. */
  private readonly sets = new Map<string, { holder: LeaseHolder | 'malformed'; names: Set<string> }>();

  /**
   * `who` says what this process is doing, for anyone who waits on its read leases ("run of
   * dfwe.yaml"); `executor`, what a run launches its stages with (kept in its lease files).
   */
  constructor(
    private readonly dir: string,
    private readonly who = 'dfwe',
    private readonly cancelJob: JobCanceller = () => {},
    executor?: string,
  ) {
    this.me = { pid: process.pid, host: hostname(), start: processStart(process.pid), ...(executor ? { executor } : {}) };
  }

  private writerPath(name: string): string {
    return join(this.dir, `${name}.lock`);
  }

  /**
   * The reader tokens of one name, in a directory of their own: a writer lists only that name's
   * readers. (In one shared directory, a listing cost ~2 ms once 100,000 nodes' tokens had come
   * and gone: an ext4 directory never shrinks.) The directory stays when its last reader leaves:
   * a name read again (a node that reads 10,000 outputs, run after run) costs a link and an unlink,
   * not a mkdir and an rmdir too. gc removes the empty ones (cache/maintenance.ts).
   */
  private readersOf(name: string): string {
    return join(this.dir, 'readers', name);
  }

  /**
   * Create `path` (O_EXCL) holding our holder line; false when it exists. A write that fails (a
   * full disk) removes the file again, so no empty lock is left behind by a live run.
   */
  private create(path: string, what: string): boolean {
    let fd: number;
    try {
      if (!this.dirMade) {
        mkdirSync(this.dir, { recursive: true });
        this.dirMade = true;
      }
      fd = openSync(path, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.leaseError(err);
    }
    try {
      writeSync(fd, JSON.stringify({ ...this.me, since: new Date().toISOString(), what }));
    } catch (err) {
      rmSync(path, { force: true });
      throw this.leaseError(err);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  /** Our holder line at `path` (a new file of ours). */
  private writeHolder(path: string, what: string): void {
    try {
      if (!this.dirMade) {
        mkdirSync(this.dir, { recursive: true });
        this.dirMade = true;
      }
      writeFileSync(path, JSON.stringify({ ...this.me, since: new Date().toISOString(), what }));
    } catch (err) {
      rmSync(path, { force: true }); // a full disk: created, but empty
      throw this.leaseError(err);
    }
  }

  /** Hard-link `from` to `path` unless `path` exists: the one atomic step that takes a lease. */
  private linkNew(from: string, path: string): boolean {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(from, path);
        return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return false;
        // A reader directory not made yet, or removed as empty by a reader leaving: make it.
        if (code !== 'ENOENT' || attempt >= 5) throw this.leaseError(err);
        try {
          mkdirSync(dirname(path), { recursive: true });
        } catch (e) {
          throw this.leaseError(e);
        }
      }
    }
  }

  private leaseError(err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return new CacheNotWritable(this.dir, err as NodeJS.ErrnoException);
    if (isEnvironmentError(err)) return new UserError(`cannot take a lease in ${this.dir}: ${describeFsError(err)}`, 1);
    return err;
  }

  /** A new reader token for NAME: a hard link to our template. */
  private createReader(name: string): string {
    if (!this.readerTemplate) {
      const t = join(this.dir, `.reader-${process.pid}-${randomBytes(4).toString('hex')}`);
      this.writeHolder(t, this.who);
      this.readerTemplate = t;
    }
    const token = join(this.readersOf(name), `${process.pid}-${this.tokenPrefix}${(this.tokens++).toString(36)}`);
    this.linkNew(this.readerTemplate, token);
    return token;
  }

  /** The holder of a lease file: absent, malformed (never whole: garbage to break) or a holder. */
  private read(path: string): LeaseHolder | 'absent' | 'malformed' {
    const text = readTextIfAny(path);
    return text === undefined ? 'absent' : (parseHolder(text) ?? 'malformed');
  }

  /** The holder of NAME's writer lease, if there is one. */
  holder(name: string): LeaseHolder | undefined {
    const h = this.read(this.writerPath(name));
    return typeof h === 'string' ? undefined : h;
  }

  isStale(path: string, h: LeaseHolder | 'malformed'): boolean {
    // Empty or cut short: being written this very moment, or left by a process killed between
    // creating and writing it. Only the second lasts.
    if (h === 'malformed') return this.ageMs(path) > MALFORMED_GRACE_MS;
    if (h.host === this.me.host) {
      if (!processAlive(h.pid)) return true;
      const start = h.start !== undefined ? processStart(h.pid) : undefined;
      return start !== undefined && start !== h.start;
    }
    return this.ageMs(path) > STALE_MS;
  }

  private ageMs(path: string): number {
    try {
      return Date.now() - statSync(path).mtimeMs;
    } catch {
      return Infinity;
    }
  }

  /** Remove a dead holder's lease, first stopping what it left running (its stage may still write). */
  private breakStale(path: string, h: LeaseHolder | 'malformed'): void {
    if (h !== 'malformed') {
      try {
        this.cancelJob(h);
      } catch {
        // best effort: the job may be gone, its executor unknown here
      }
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

  /** Take the writer file once: ours ('taken', or 'took over' from a dead holder), or its live holder. */
  private tryWriter(name: string, what: string): 'taken' | 'took over' | LeaseHolder {
    const p = this.writerPath(name);
    let broke = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.create(p, what)) return broke ? 'took over' : 'taken';
      const h = this.read(p);
      if (h === 'absent') continue;
      if (!this.isStale(p, h)) return h === 'malformed' ? TAKING : h;
      this.breakStale(p, h);
      broke = true;
    }
    return this.holder(name) ?? { pid: -1, host: '?', since: '?', what };
  }

  /**
   * Live readers of NAME (this process's own included: a restore in one run must wait for a node
   * of the same run that is reading the path); stale ones are removed.
   */
  private liveReaders(name: string): LeaseHolder[] {
    const dir = this.readersOf(name);
    const live: LeaseHolder[] = [];
    for (const t of listed(dir)) {
      const p = join(dir, t);
      const h = this.read(p);
      if (h === 'absent') continue;
      if (h === 'malformed' || this.isStale(p, h)) rmSync(p, { force: true });
      else live.push(h);
    }
    return [...live, ...this.liveSetReaders(name)];
  }

  /** Holders of live read sets that list NAME; stale sets are removed. */
  private liveSetReaders(name: string): LeaseHolder[] {
    const dir = this.readersOf(SETS);
    const files = listed(dir);
    const live: LeaseHolder[] = [];
    const present = new Set(files);
    for (const f of this.sets.keys()) if (!present.has(f)) this.sets.delete(f);
    for (const f of files) {
      const p = join(dir, f);
      let set = this.sets.get(f);
      if (!set) {
        let text: string;
        try {
          text = readFileSync(p, 'utf8');
        } catch {
          continue; // released meanwhile
        }
        const lines = text.split('\n');
        // Whole sets end in a newline: written under a temp name, then renamed into place.
        const holder = text.endsWith('\n') ? (parseHolder(lines[0] ?? '') ?? 'malformed') : 'malformed';
        set = { holder, names: new Set(lines.slice(1)) };
        this.sets.set(f, set);
      }
      if (!set.names.has(name)) continue;
      if (set.holder === 'malformed' || this.isStale(p, set.holder)) {
        rmSync(p, { force: true });
        this.sets.delete(f);
      } else live.push(set.holder);
    }
    return live;
  }

  private granted(path: string, kind: 'write' | 'read' | 'set', tookOver = false): Lease {
    const writer = kind === 'write';
    // A reader token shares its template's inode: the template's heartbeat is the token's.
    this.heartbeat.add(kind === 'read' ? this.readerTemplate! : path);
    let released = false;
    return {
      tookOver,
      release: () => {
        if (released) return;
        released = true;
        if (kind === 'set') this.heartbeat.remove(path);
        if (!writer) {
          // A token's name is ours alone (pid and random): no one else can have made it since.
          unlinkIfAny(path);
          return;
        }
        this.heartbeat.remove(path);
        // Only remove our own file: if ours was broken as stale, it may now belong to another run.
        const h = this.read(path);
        if (typeof h !== 'string' && h.pid === this.me.pid && h.host === this.me.host) unlinkIfAny(path);
      },
      // Appended, not rewritten: one write to a file only we own.
      setHandle: (job) => {
        if (writer) appendFileSync(path, `\n${JSON.stringify({ job })}`);
      },
    };
  }

  /** Waits with backoff, telling `onWait` of each new holder waited on. */
  private waiter(onWait?: (h: LeaseHolder) => void, signal?: AbortSignal): (h: LeaseHolder) => Promise<void> {
    let told: string | undefined;
    let delay = 20;
    return async (h) => {
      const who = `${h.pid}@${h.host}`;
      if (who !== told) {
        onWait?.(h);
        told = who;
      }
      if (signal?.aborted) throw new Error('aborted while waiting for a lease');
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 500);
    };
  }

  /**
   * Wait until the lease is ours in `mode`; `onWait` hears who holds it (once per holder).
   * Names must be taken in one global order (sorted) by every run, so no two runs deadlock.
   */
  async acquire(name: string, what: string, mode: LeaseMode, onWait?: (h: LeaseHolder) => void, signal?: AbortSignal): Promise<Lease> {
    const wait = this.waiter(onWait, signal);
    if (mode === 'write') {
      let took: 'taken' | 'took over';
      for (;;) {
        const r = this.tryWriter(name, what);
        if (typeof r === 'string') {
          took = r;
          break;
        }
        await wait(r);
      }
      const lease = this.granted(this.writerPath(name), 'write', took === 'took over');
      try {
        for (let readers = this.liveReaders(name); readers.length > 0; readers = this.liveReaders(name)) await wait(readers[0]!);
      } catch (err) {
        lease.release();
        throw err;
      }
      return lease;
    }
    for (;;) {
      const token = this.createReader(name);
      const writer = this.otherWriter(this.writerPath(name));
      if (!writer) return this.granted(token, 'read');
      rmSync(token, { force: true });
      await wait(writer);
    }
  }

  /**
   * Read leases on all of NAMES as one (see the top of this file): granted when none has a live
   * writer other than this process, else the set is withdrawn and taken again once that writer is
   * gone. Holding none of them while waiting keeps the one global order of lease names.
   */
  async acquireReadSet(names: string[], onWait?: (h: LeaseHolder) => void, signal?: AbortSignal): Promise<Lease> {
    const wanted = new Set(names);
    const wait = this.waiter(onWait, signal);
    for (;;) {
      const set = this.createReadSet(names);
      const blocker = this.writerAmong(wanted);
      if (!blocker) return this.granted(set, 'set');
      rmSync(set, { force: true });
      await wait(blocker);
    }
  }

  /** Our set file for NAMES, in place whole: written under a temp name, then renamed. Its holder says who we are, as a token's does. */
  private createReadSet(names: string[]): string {
    const set = join(this.readersOf(SETS), `${process.pid}-${this.tokenPrefix}${(this.tokens++).toString(36)}`);
    const temp = join(this.dir, `.tmp-set-${process.pid}-${this.tokenPrefix}${(this.tokens++).toString(36)}`);
    const text = `${JSON.stringify({ ...this.me, since: new Date().toISOString(), what: this.who })}\n${names.join('\n')}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        if (!this.dirMade) {
          mkdirSync(this.dir, { recursive: true });
          this.dirMade = true;
        }
        writeFileSync(temp, text);
        renameSync(temp, set);
        return set;
      } catch (err) {
        rmSync(temp, { force: true }); // a full disk: created, but cut short
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw this.leaseError(err);
        try {
          mkdirSync(dirname(set), { recursive: true });
        } catch (e) {
          throw this.leaseError(e);
        }
      }
    }
  }

  /** A live writer, not this process, of one of NAMES (stale ones are broken): one listing of the lock directory. */
  private writerAmong(names: Set<string>): LeaseHolder | undefined {
    let files: string[];
    try {
      files = readdirSync(this.dir);
    } catch (err) {
      throw this.leaseError(err);
    }
    for (const f of files) {
      if (!f.endsWith('.lock') || !names.has(f.slice(0, -'.lock'.length))) continue;
      const writer = this.otherWriter(join(this.dir, f));
      if (writer) return writer;
    }
    return undefined;
  }

  /** The live holder of the writer file at `path`, unless it is this process (stale ones are broken). */
  private otherWriter(path: string): LeaseHolder | undefined {
    let h = this.read(path);
    while (h !== 'absent' && this.isStale(path, h)) {
      this.breakStale(path, h);
      h = this.read(path);
    }
    if (h === 'absent' || (h !== 'malformed' && h.pid === this.me.pid && h.host === this.me.host)) return undefined;
    return h === 'malformed' ? TAKING : h;
  }

  /** The writer lease now, or the live holder (a writer or a reader) that keeps it from us. */
  tryWrite(name: string, what: string): Lease | LeaseHolder {
    const r = this.tryWriter(name, what);
    if (typeof r !== 'string') return r;
    const lease = this.granted(this.writerPath(name), 'write');
    const readers = this.liveReaders(name);
    if (readers.length === 0) return lease;
    lease.release();
    return readers[0]!;
  }

  /** Run a long synchronous step (a big commit) with the heartbeats on a worker thread meanwhile. */
  heavy<T>(work: () => T): T {
    return this.heartbeat.during(work);
  }

  close(): void {
    this.heartbeat.stop();
    if (this.readerTemplate) rmSync(this.readerTemplate, { force: true });
    this.readerTemplate = undefined;
  }
}
