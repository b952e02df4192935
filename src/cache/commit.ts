import {
  closeSync, fchmodSync, futimesSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readlinkSync, readSync, renameSync, rmSync, writeSync,
  type Stats,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { manifestDigest, readTree } from '../keys/tree.js';
import { FsShapeError, kindOf, openRegular } from '../util/fs-safe.js';
import { tmpName } from '../util/fsx.js';
import { digestFd } from '../util/hash.js';
import type { Bounds } from '../workspace-bounds.js';
import type { CacheStore } from './store.js';
import type { OutputEntry, OutputFile, OutputLink } from './records.js';
import { objectState, quarantine, SEAL_MS } from './objects.js';
import { linkInto, stagingName } from './restore.js';
import { linkLeaves } from './record-shape.js';
import type { Digest } from '../util/key-types.js';

/*
 * Committing a node's outputs: each file's content becomes an object, and the workspace path a
 * read-only hardlink to it. What a stage left at its output paths is never trusted:
 * - nothing is followed: a symlink inside a directory output is stored as a link (it must stay
 *   inside the output, whose content it then is), and an output that is itself a symlink, a
 *   FIFO or a device is refused;
 * - only an inode that nothing else links to becomes an object in place (sealed: read-only,
 *   mtime 2000). A file with other hardlinks, which may be anywhere, is copied, so sealing never
 *   changes a file outside the node's own output;
 * - the output's directory must still really be inside the workspace (a stage can make a
 *   symlink on the way after planning).
 */

/** Why an output cannot be stored: the node fails with this, and nothing of it is committed. */
export class CommitError extends Error {}

/** A commit this big keeps the thread busy for seconds: `heavy` runs it so that heartbeats go on. */
const HEAVY_FILES = 5000;
const HEAVY_BYTES = 2 ** 31;

type Heavy = <T>(work: () => T) => T;

export function commitOutput(store: CacheStore, bounds: Bounds, abs: string, rel: string, name: string, expected: 'file' | 'dir' | 'any', heavy: Heavy = (w) => w()): OutputEntry {
  const what = `output "${name}" (${rel})`;
  const outside = bounds.outsideWhenWritten(abs);
  if (outside) throw new CommitError(`${what} is really ${outside}, outside the workspace (a symlink on its way was made after planning); nothing of it was stored`);
  let st: Stats;
  try {
    st = lstatSync(abs);
  } catch {
    throw new CommitError(`did not write its declared output "${name}" (${rel})`);
  }
  if (st.isSymbolicLink()) throw new CommitError(`${what} is a symlink (to ${readlinkSync(abs)}): an output must be a regular file or a directory, which dfwe stores by content`);
  if (st.isFile()) {
    if (expected === 'dir') throw new CommitError(`${what} should be a dir`);
    const ingest = (): OutputEntry => {
      const f = ingestFile(store, abs, what, stagingName(abs));
      return { path: rel, kind: 'file', digest: f.digest, size: f.size };
    };
    return st.size > HEAVY_BYTES ? heavy(ingest) : ingest();
  }
  if (!st.isDirectory()) throw new CommitError(`${what} is ${kindOf(st)}: an output must be a regular file or a directory`);
  if (expected === 'file') throw new CommitError(`${what} should be a file`);
  let tree;
  try {
    tree = readTree(abs, { follow: false }, what);
  } catch (err) {
    if (err instanceof FsShapeError) throw new CommitError(err.message);
    throw err;
  }
  const links: OutputLink[] = tree.links.map((l) => ({ path: l.rel, target: l.target }));
  const linkPaths = new Set(links.map((l) => l.path));
  for (const l of links) {
    if (linkLeaves(l.path, l.target, linkPaths)) {
      throw new CommitError(`${what} holds ${l.path}, a symlink to ${l.target}, outside the output: a link's target is not content dfwe can store; copy what it points to, or declare it as a dependency`);
    }
  }
  const ingestAll = (): OutputFile[] =>
    tree.files.map((t) => {
      const f = ingestFile(store, join(abs, t.rel), `${what}: ${t.rel}`);
      return { path: t.rel, digest: f.digest, size: f.size, exec: f.exec };
    });
  const bytes = tree.files.reduce((a, f) => a + f.st.size, 0);
  const files = tree.files.length > HEAVY_FILES || bytes > HEAVY_BYTES ? heavy(ingestAll) : ingestAll();
  for (const l of links) sealLink(join(abs, l.path));
  const entry: OutputEntry = { path: rel, kind: 'dir', digest: manifestDigest(files, links, tree.emptyDirs), size: files.reduce((a, f) => a + f.size, 0), files };
  if (links.length) entry.links = links;
  if (tree.emptyDirs.length) entry.dirs = tree.emptyDirs;
  return entry;
}

function sealLink(abs: string): void {
  lutimesSync(abs, SEAL_MS / 1000, SEAL_MS / 1000);
}

/**
 * Move a finished file into the object store and leave its path as a read-only hardlink to the
 * object (a copy across filesystems). It appears whole, by rename; durable once the group
 * commit of the record that names it is done.
 */
export function ingestFile(store: CacheStore, abs: string, what = abs, linkTmp?: string): { digest: Digest; size: number; exec: boolean } {
  let opened;
  try {
    opened = openRegular(abs, { follow: false, what });
  } catch (err) {
    if (err instanceof FsShapeError) throw new CommitError(err.message);
    throw err;
  }
  const { fd, st } = opened;
  try {
    // Not fsynced here: the node's group commit makes every object of its record durable
    // before the record is written (src/cache/group-commit.ts).
    const digest = digestFd(fd);
    const exec = (st.mode & 0o111) !== 0;
    const obj = store.objectPath(digest);
    const state = objectState(store, digest);
    if (state === 'modified') quarantine(store, digest);
    if (state === 'ok') linkInto(obj, abs, linkTmp);
    else if (!(st.nlink === 1 && adopt(fd, st, abs, obj, exec))) {
      copyToObject(fd, obj, exec);
      linkInto(obj, abs, linkTmp);
    }
    return { digest, size: st.size, exec };
  } finally {
    closeSync(fd);
  }
}

/** Make the stage's own inode the object: link it under a temp name, seal it, rename. False across filesystems. */
function adopt(fd: number, st: Stats, abs: string, obj: string, exec: boolean): boolean {
  const tmp = tmpName(obj);
  try {
    linkSync(abs, tmp);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // the fan-out directory does not exist yet: made once, not per object
      mkdirSync(dirname(obj), { recursive: true });
      return adopt(fd, st, abs, obj, exec);
    }
    if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK') return false;
    throw err;
  }
  try {
    const linked = lstatSync(tmp);
    // Something replaced the path since it was opened: seal nothing, copy what was hashed.
    if (linked.ino !== st.ino || linked.dev !== st.dev) {
      rmSync(tmp, { force: true });
      return false;
    }
    // Through the descriptor: it is the inode that was hashed, wherever its names are.
    fchmodSync(fd, exec ? 0o555 : 0o444);
    futimesSync(fd, SEAL_MS / 1000, SEAL_MS / 1000);
    renameSync(tmp, obj);
    return true;
  } catch (e) {
    // A full disk or a kill mid-way: no partial temp file outlives the failure.
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** A new object with the bytes behind `fd`: written to a temp name, sealed, renamed (made durable by the group commit). */
function copyToObject(fd: number, obj: string, exec: boolean): void {
  mkdirSync(dirname(obj), { recursive: true });
  const tmp = tmpName(obj);
  const out = openSync(tmp, 'wx', 0o600);
  // Closed once only: another thread (the group commit's) may have been given the number since.
  let open = true;
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    for (let n; (n = readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n) {
      for (let off = 0; off < n; ) off += writeSync(out, buf, off, n - off);
    }
    fchmodSync(out, exec ? 0o555 : 0o444);
    futimesSync(out, SEAL_MS / 1000, SEAL_MS / 1000);
    open = false;
    closeSync(out);
    renameSync(tmp, obj);
  } catch (e) {
    if (open) closeSync(out);
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Store a log (or any small blob dfwe wrote itself) as an object; returns its digest. */
export function putBlob(store: CacheStore, abs: string): Digest {
  return ingestFile(store, abs).digest;
}
