import { appendFileSync, lstatSync, readFileSync, readlinkSync, realpathSync, rmSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FsShapeError, kindOf } from '../util/fs-safe.js';
import { digestFile } from '../util/hash.js';
import { writeFileAtomic } from '../util/fsx.js';
import { decodeSections, encodeSections, type SectionFormat } from '../util/section-file.js';
import type { Bounds } from '../workspace-bounds.js';
import { linkDigest, manifestDigest, readTree, type Inside, type Walk } from './tree.js';

/*
 * Content digests of workspace files, memoised by what changes when a file changes: device,
 * inode, size, mtime and ctime. An entry hashed within RACY_MS of the file's mtime is not trusted
 * (the racy-clean rule, as in git): a write in the same timestamp tick as the hash would
 * otherwise leave mtime unchanged and hide the edit. Such files are re-hashed until they age.
 *
 * The memo is a JSON file and a log beside it: a run that hashed a few files appends their entries
 * to the log of an existing memo rather than rewriting the whole memo (4 MB at 20,000 nodes; rewriting it was a tenth
 * of a run with one leaf changed). Once the log outgrows a share of the memo, the two are written
 * as one again. Two runs appending, or one folding the log while another appends, can only lose
 * entries, which costs a re-hash: an entry is used only while the file's stat matches it.
 */

/** The log is folded into the memo once it is this large, or a quarter of the memo if that is more. */
const LOG_FOLD_BYTES = 256 * 1024;

const RACY_MS = 2000;

type Entry = [dev: number, ino: number, size: number, mtimeMs: number, ctimeMs: number, digest: string, hashedAtMs: number];

function isEntry(e: unknown): e is Entry {
  return Array.isArray(e) && e.length === 7 && typeof e[5] === 'string' && e.every((x, i) => (i === 5 ? true : typeof x === 'number'));
}

/**
 * The memo's file: a column of paths, one of digests and one of stat numbers (six an entry: dev,
 * ino, size, mtimeMs, ctimeMs, hashedAtMs), read in place. As a JSON object of 30,000 small arrays
 * it took 85-150 ms to parse at 20,002 nodes, every command that plans.
 */
const MEMO_FILE: SectionFormat = { magic: 'dfwedigs', columns: { paths: 'json', digests: 'json', stats: 'f64' } };
const MEMO_FORMAT = 2;
const STATS = 6;

interface MemoColumns {
  paths: string[];
  digests: string[];
  stats: Float64Array;
}

/** The memo file's entries, or undefined when it is not a whole memo of this format. */
function readMemo(buf: Buffer): MemoColumns | undefined {
  const m = decodeSections(MEMO_FILE, buf) as Partial<MemoColumns> & { format?: unknown } | undefined;
  if (!m || m.format !== MEMO_FORMAT || !Array.isArray(m.paths) || !Array.isArray(m.digests) || !(m.stats instanceof Float64Array)) return undefined;
  if (m.digests.length !== m.paths.length || m.stats.length !== STATS * m.paths.length) return undefined;
  return m as MemoColumns;
}

/** Every entry of a memo file (its log aside), by path: for a look at what it holds. */
export function memoEntries(path: string): Map<string, Entry> {
  const m = readMemo(readFileSync(path));
  const out = new Map<string, Entry>();
  if (m) for (let i = 0; i < m.paths.length; i++) out.set(m.paths[i]!, entryAt(m, i));
  return out;
}

function entryAt(m: MemoColumns, i: number): Entry {
  const s = m.stats;
  const o = STATS * i;
  return [s[o]!, s[o + 1]!, s[o + 2]!, s[o + 3]!, s[o + 4]!, m.digests[i]!, s[o + 5]!];
}

export class FileDigests {
  /** The memo as read, its entries found by path when asked for (most commands ask for few). */
  private memo: MemoColumns | undefined;
  private memoIndex: Map<string, number> | undefined;
  /** The log's entries and those hashed since, over the memo's. */
  private entries = new Map<string, Entry>();
  /** Paths hashed since the memo was read or saved: what the next save appends. */
  private readonly changed = new Set<string>();
  private readonly realDirs = new Map<string, string>();
  private memoBytes = 0;
  private logBytes = 0;

  constructor(
    private readonly memoPath: string | undefined,
    private readonly bounds: Bounds,
  ) {
    if (memoPath) {
      try {
        // A memo only saves time: anything but the shape written here is read as empty.
        const buf = readFileSync(memoPath);
        this.memo = readMemo(buf);
        // One that is not a whole memo is written again at the next save, not appended to.
        this.memoBytes = this.memo ? buf.length : 0;
      } catch {
        this.memo = undefined;
      }
      this.readLog(`${memoPath}.log`);
    }
  }

  /** The log's entries, later lines over earlier ones; a line cut short (a run killed mid-append) is skipped. */
  private readLog(logPath: string): void {
    let text: string;
    try {
      text = readFileSync(logPath, 'utf8');
    } catch {
      return;
    }
    this.logBytes = text.length;
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const [k, e] = JSON.parse(line) as [unknown, unknown];
        if (typeof k === 'string' && isEntry(e)) this.entries.set(k, e);
      } catch {
        // cut short
      }
    }
  }

  /**
   * Digest of a dependency, a file or a directory's tree (names, exec bits, contents, empty
   * directories); undefined if missing. Symlinks are followed, since a dependency is what the
   * stage reads, but only to places the bounds let dfwe read: the workspace, allow_outside and
   * read_only. A FIFO, a device or a link loop is an FsShapeError: never a read that blocks or
   * never ends.
   */
  digest(absPath: string, what = absPath): string | undefined {
    if (!this.bounds.declared(absPath)) throw new FsShapeError(absPath, `${what} lies outside the workspace, in no directory listed under read_only`);
    let st: Stats;
    try {
      st = lstatSync(absPath);
    } catch {
      return undefined;
    }
    let real: string;
    try {
      real = st.isSymbolicLink() ? realpathSync.native(absPath) : join(this.realDir(dirname(absPath)), basename(absPath));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw new FsShapeError(absPath, `${what} is a symlink loop`);
      if (code === 'ENOENT') return undefined; // a dangling link: the dependency is missing
      throw err;
    }
    if (!this.bounds.readable(real)) throw new FsShapeError(absPath, `${what} is really ${real}, outside the workspace`);
    if (st.isSymbolicLink()) st = lstatSync(real);
    const bounds: Inside = { inside: (r) => this.bounds.readable(r) };
    if (st.isDirectory()) return this.digestDir(absPath, { follow: true, bounds }, what);
    if (!st.isFile()) throw new FsShapeError(absPath, `${what} is ${kindOf(st)}; a dependency must be a regular file or a directory`);
    return this.digestOne(absPath, st, true, what);
  }

  /**
   * The real path of a directory, once per process: the sources of 10,000 nodes in one directory
   * paid a realpath each, a readlink per component.
   */
  private realDir(dir: string): string {
    let real = this.realDirs.get(dir);
    if (real === undefined) {
      real = realpathSync.native(dir);
      this.realDirs.set(dir, real);
    }
    return real;
  }

  /**
   * Digest of a produced output as a commit records it: symlinks are content, never followed.
   * Undefined if missing.
   */
  outputDigest(absPath: string, what = absPath): string | undefined {
    let st: Stats;
    try {
      st = lstatSync(absPath);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) return linkDigest(readlinkSync(absPath));
    if (st.isDirectory()) return this.digestDir(absPath, { follow: false }, what);
    if (!st.isFile()) throw new FsShapeError(absPath, `${what} is ${kindOf(st)}`);
    return this.digestOne(absPath, st, false, what);
  }

  /** The entry of a path, if the log, this process or the memo has a whole one. */
  private entry(absPath: string): Entry | undefined {
    const e = this.entries.get(absPath);
    if (e !== undefined || this.memo === undefined) return e;
    if (this.memoIndex === undefined) {
      this.memoIndex = new Map();
      this.memo.paths.forEach((p, i) => this.memoIndex!.set(p, i));
    }
    const i = this.memoIndex.get(absPath);
    if (i === undefined) return undefined;
    const found = entryAt(this.memo, i);
    return isEntry(found) ? found : undefined;
  }

  private digestOne(absPath: string, st: Stats, follow: boolean, what: string): string {
    const e = this.entry(absPath);
    if (
      e &&
      e[0] === st.dev &&
      e[1] === st.ino &&
      e[2] === st.size &&
      e[3] === st.mtimeMs &&
      e[4] === st.ctimeMs &&
      e[6] - st.mtimeMs >= RACY_MS
    ) {
      return e[5];
    }
    const digest = digestFile(absPath, { follow, what });
    this.entries.set(absPath, [st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs, digest, Date.now()]);
    this.changed.add(absPath);
    return digest;
  }

  private digestDir(absDir: string, walk: Walk, what: string): string {
    const tree = readTree(absDir, walk, what);
    const files = tree.files.map((f) => ({ path: f.rel, exec: (f.st.mode & 0o111) !== 0, digest: this.digestOne(join(absDir, f.rel), f.st, walk.follow, what) }));
    return manifestDigest(files, tree.links.map((l) => ({ path: l.rel, target: l.target })), tree.emptyDirs);
  }

  save(): void {
    if (!this.memoPath || this.changed.size === 0) return;
    const log = `${this.memoPath}.log`;
    try {
      const lines = [...this.changed].map((k) => `${JSON.stringify([k, this.entries.get(k)])}\n`).join('');
      if (this.memoBytes > 0 && this.logBytes + lines.length <= Math.max(LOG_FOLD_BYTES, this.memoBytes / 4)) {
        appendFileSync(log, lines);
        this.logBytes += lines.length;
      } else {
        const paths: string[] = [];
        const digests: string[] = [];
        const stats: number[] = [];
        const add = (p: string, e: Entry): void => {
          paths.push(p);
          digests.push(e[5]);
          stats.push(e[0], e[1], e[2], e[3], e[4], e[6]);
        };
        const m = this.memo;
        for (let i = 0; m && i < m.paths.length; i++) {
          const e = entryAt(m, i);
          if (!this.entries.has(m.paths[i]!) && isEntry(e)) add(m.paths[i]!, e);
        }
        for (const [p, e] of this.entries) add(p, e);
        const bytes = encodeSections(MEMO_FILE, { format: MEMO_FORMAT, paths, digests, stats: Float64Array.from(stats) });
        writeFileAtomic(this.memoPath, bytes, { durable: false });
        rmSync(log, { force: true });
        this.memoBytes = bytes.length;
        this.logBytes = 0;
      }
      this.changed.clear();
    } catch {
      // A memo that cannot be written (read-only or full cache) only costs a re-hash next time.
    }
  }
}
