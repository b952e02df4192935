import { closeSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
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
 * A writer's NAME.lock is a hard link to a file of its process's own, the lease journal: a line
 * saying who the process is, then a line for each lease it took (what for, and later how to stop
 * its stage), appended before the link is made. Taking a lease is an append and a link; releasing
 * it, an lstat and an unlink, and one heartbeat refreshes every lease of the run (they share the
 * journal's mtime). A file per lease was created, reopened for its handle, read back at release and
 * removed: six calls more a node on the engine's thread. A journal is closed for new leases at
 * JOURNAL_LINES lines, so reading one stays cheap, and removed once its last lease is released. The lease's own lines are the last ones that name it; a file of an older dfwe (one
 * holder line, then `job` lines) is read as before.
 *
 * A lease file appears whole or not at all: a journal is linked only once its lines are written, and
 * reader files are written under a temp name, then hard-linked into place. A full disk never leaves
 * an empty lock that others would wait on. A holder on this host is alive exactly when its pid is
 * (with the same start time, against pid reuse); one on another host is alive while its heartbeat
 * (the file's mtime, which every link to it shares) is younger than STALE_MS.
 */

const STALE_MS = 60_000;
/** A lease file with no whole holder line yet is given this long before it counts as left behind. */
const MALFORMED_GRACE_MS = 2_000;
/** Below this many names, read leases are taken one by one (a set costs a file and a listing). */
export const READ_SET_MIN = 8;
/** The directory of read sets, beside the names' token directories (no lease name starts with '.'). */
const SETS = '.sets';
/** A lease journal takes no new lease past this many lines (a reader of one of its leases reads it whole). */
const JOURNAL_LINES = 1000;
/** Lease journals are named so (gc removes those of dead processes, as reader templates). */
export const JOURNAL_PREFIX = '.leases-';
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

/** A lease journal of ours (see the top of this file): open for appends while any of its leases is held. */
interface Journal {
  path: string;
  fd: number;
  ino: number;
  /** Lines written; Infinity once it takes no new lease. */
  lines: number;
  /** Its leases held now. */
  live: number;
  /** Its descriptor was closed (by `close()`, or once retired): a late release or handle must not touch the number again. */
  closed?: boolean;
}

/** The cache cannot be written here (read-only filesystem, no permission). */
export class CacheNotWritable extends UserError {
  constructor(dir: string, err: NodeJS.ErrnoException) {
    super(`the cache cannot be written (${dir}: ${describeFsError(err)})`);
  }
}

/** A line of a lease journal about one of its leases. */
interface JournalLine {
  lease: string;
  what?: string;
  since?: string;
  job?: JobHandle;
}

/**
 * The holder a lease file says, for lease NAME: a holder line merged with the lines after it, or in
 * a lease journal (its first line says `journal`) with the last lines that name NAME. A journal's
 * last line may be cut short (being appended this moment): only whole lines count there.
 */
function parseHolder(text: string, name?: string): LeaseHolder | undefined {
  try {
    let lines = text.split('\n');
    const journal = lines[0]!.includes('"journal":');
    if (journal) lines.pop(); // after the last newline: empty, or a line being written
    lines = lines.filter(Boolean);
    const first = JSON.parse(lines[0] ?? '') as Partial<LeaseHolder>;
    let parts: Partial<LeaseHolder>[] = [first];
    if (!journal) parts = parts.concat(lines.slice(1).map((l) => JSON.parse(l) as Partial<LeaseHolder>));
    else if (name !== undefined) {
      const tag = `"lease":${JSON.stringify(name)}`;
      for (const l of lines.slice(1)) {
        if (!l.includes(tag)) continue;
        let line: JournalLine;
        try {
          line = JSON.parse(l) as JournalLine;
        } catch {
          continue; // a line a full disk cut short: the journal was retired after it
        }
        if (line.lease !== name) continue;
        // Taken again: what it was taken for before no longer holds.
        if (line.what !== undefined) parts = [first, { what: line.what, since: line.since, job: undefined }];
        if (line.job !== undefined) parts.push({ job: line.job });
      }
    }
    const h = Object.assign({}, ...parts) as Partial<LeaseHolder> & { group?: number; slurmJob?: string; journal?: number };
    delete h.journal;
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
  /** The lease journal new writer leases link to (see the top of this file). */
  private journal: Journal | undefined;
  /** Journals with live leases, the current one included: closed and removed when their last lease goes. */
  private readonly journals = new Set<Journal>();
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

  /** The lease directory, made once by this process. */
  private makeDir(): void {
    if (this.dirMade) return;
    mkdirSync(this.dir, { recursive: true });
    this.dirMade = true;
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
   * Take writer lease NAME at `path`: its line appended to our journal, then the journal linked
   * there; false when `path` exists. The journal that took it, or false.
   */
  private create(path: string, name: string, what: string): Journal | false {
    const journal = this.journalFor();
    this.append(journal, { lease: name, what, since: new Date().toISOString() });
    try {
      linkSync(journal.path, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.leaseError(err);
    }
    journal.live++;
    if (journal.live === 1) this.heartbeat.add(journal.path);
    return journal;
  }

  /** The journal to take the next lease in: a new one once the current is full (or a write to it failed). */
  private journalFor(): Journal {
    if (this.journal && this.journal.lines < JOURNAL_LINES) return this.journal;
    const old = this.journal;
    this.journal = undefined;
    if (old) this.retire(old);
    const path = join(this.dir, `${JOURNAL_PREFIX}${process.pid}-${this.tokenPrefix}${(this.tokens++).toString(36)}`);
    let fd: number;
    try {
      this.makeDir();
      fd = openSync(path, 'wx');
    } catch (err) {
      throw this.leaseError(err);
    }
    const journal: Journal = { path, fd, lines: 0, live: 0, ino: fstatSync(fd).ino };
    try {
      this.append(journal, { ...this.me, since: new Date().toISOString(), what: this.who, journal: 1 });
    } catch (err) {
      closeSync(fd);
      rmSync(path, { force: true }); // a full disk: created, but never whole
      throw err;
    }
    this.journal = journal;
    this.journals.add(journal);
    return journal;
  }

  /** One whole line at the end of a journal. A write that fails retires it: its last line may be cut short. */
  private append(journal: Journal, line: object): void {
    if (journal.closed) return;
    const buf = Buffer.from(`${JSON.stringify(line)}\n`);
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(journal.fd, buf, off);
      journal.lines++;
    } catch (err) {
      journal.lines = Infinity;
      throw this.leaseError(err);
    }
  }

  /** A journal that takes no new lease (not the current one): closed and removed once none of its leases is held. */
  private retire(journal: Journal): void {
    if (journal.live > 0) return;
    this.journals.delete(journal);
    this.shut(journal);
  }

  /** Close a journal's descriptor once and remove its name (its leases' links keep its lines). */
  private shut(journal: Journal): void {
    if (journal.closed) return;
    journal.closed = true;
    closeSync(journal.fd);
    unlinkIfAny(journal.path);
  }

  /** Our holder line at `path` (a new file of ours). */
  private writeHolder(path: string, what: string): void {
    try {
      this.makeDir();
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
    const file = basename(path);
    return text === undefined ? 'absent' : (parseHolder(text, file.endsWith('.lock') ? file.slice(0, -'.lock'.length) : undefined) ?? 'malformed');
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

  /** Take the writer file once: ours (the journal that took it; `tookOver` from a dead holder), or its live holder. */
  private tryWriter(name: string, what: string): { journal: Journal; tookOver: boolean } | LeaseHolder {
    const p = this.writerPath(name);
    let broke = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const journal = this.create(p, name, what);
      if (journal) return { journal, tookOver: broke };
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

  /** A reader token or a read set at `path`. */
  private granted(path: string, kind: 'read' | 'set'): Lease {
    // A reader token shares its template's inode: the template's heartbeat is the token's.
    this.heartbeat.add(kind === 'read' ? this.readerTemplate! : path);
    let released = false;
    return {
      tookOver: false,
      release: () => {
        if (released) return;
        released = true;
        if (kind === 'set') this.heartbeat.remove(path);
        // A token's name is ours alone (pid and random): no one else can have made it since.
        unlinkIfAny(path);
      },
      setHandle: () => {},
    };
  }

  /** Writer lease NAME, linked at `path` to `journal` (its heartbeat is the journal's). */
  private grantedWrite(name: string, path: string, journal: Journal, tookOver = false): Lease {
    let released = false;
    return {
      tookOver,
      release: () => {
        if (released) return;
        released = true;
        // Only remove our own link: if ours was broken as stale, the name may now be another run's.
        try {
          if (lstatSync(path, { throwIfNoEntry: false })?.ino === journal.ino) unlinkIfAny(path);
        } finally {
          if (--journal.live === 0) {
            this.heartbeat.remove(journal.path);
            if (journal !== this.journal) this.retire(journal);
          }
        }
      },
      // A line appended to the journal, whose lines only we write.
      setHandle: (job) => {
        if (!released) this.append(journal, { lease: name, job });
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
      let took: { journal: Journal; tookOver: boolean };
      for (;;) {
        const r = this.tryWriter(name, what);
        if ('journal' in r) {
          took = r;
          break;
        }
        await wait(r);
      }
      const lease = this.grantedWrite(name, this.writerPath(name), took.journal, took.tookOver);
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
        this.makeDir();
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
    if (!('journal' in r)) return r;
    const lease = this.grantedWrite(name, this.writerPath(name), r.journal);
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
    // A lease still held keeps its link (its holder line with it): ours stop being judged alive when we exit.
    this.journal = undefined;
    for (const j of this.journals) this.shut(j);
    this.journals.clear();
  }
}
