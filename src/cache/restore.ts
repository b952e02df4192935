import { chmodSync, copyFileSync, linkSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, type Stats } from 'node:fs';
import type { FileDigests } from '../keys/file-digests.js';
import { dirname, join } from 'node:path';
import { removeIfAny, tmpName } from '../util/fsx.js';
import { keyOf } from '../util/hash.js';
import type { Bounds } from '../workspace-bounds.js';
import type { CacheStore } from './store.js';
import type { NodeRecord, OutputEntry } from './records.js';
import { checkObject, objectState, quarantine, SEAL_MS } from './objects.js';
import type { Digest } from '../util/key-types.js';

/*
 * Putting cached outputs back into the workspace, and telling whether they are there. A restore
 * writes only at the node's own declared paths (never where a record says: records can be
 * edited), only where those paths really are inside the workspace, and replaces only what dfwe
 * made itself. It builds the output under a temp name and swaps it in by rename.
 */

/** Why an output cannot be put in place: the node fails with this message, and nothing is changed. */
export class RestoreError extends Error {}

/** Objects up to this size are re-hashed before they are restored into the workspace. */
export const VERIFY_ON_RESTORE_BYTES = 1 << 30;

/**
 * The temp name of an output path while dfwe builds it. Fixed, not per process: only the holder
 * of the path's lease uses it, so whatever is found there was left by a holder that died.
 */
export function stagingName(abs: string): string {
  return `${abs}.dfwe-tmp`;
}

/**
 * One output of a record, against the cache and the workspace: 'materialized' (the workspace
 * path holds hardlinks to the intact objects, the record's links and empty directories, and
 * nothing else), 'restorable' (the objects are intact, the workspace differs) or 'damaged' (an
 * object is missing or was modified).
 */
export function outputState(store: CacheStore, digests: FileDigests, absPath: string, out: OutputEntry): 'materialized' | 'restorable' | 'damaged' {
  const files = out.kind === 'file' ? [{ path: '', digest: out.digest }] : out.files!;
  let linked = true;
  for (const f of files) {
    let obj: Stats;
    try {
      obj = statSync(store.objectPath(f.digest));
    } catch {
      return 'damaged';
    }
    if (obj.mtimeMs !== SEAL_MS) return 'damaged';
    if (linked) {
      const p = f.path ? join(absPath, f.path) : absPath;
      const ws = lstatSafe(p);
      linked = ws !== undefined && ((ws.ino === obj.ino && ws.dev === obj.dev) || isSealedCopy(digests, p, ws, obj, f.digest));
    }
  }
  if (linked && out.kind === 'dir') linked = sameShape(absPath, out);
  return linked ? 'materialized' : 'restorable';
}

/**
 * A cache on another filesystem gives copies, not hardlinks: a sealed, read-only copy of the same
 * size whose content digest (memoised by inode, size, mtime and ctime) is the object's is in place.
 */
function isSealedCopy(digests: FileDigests, path: string, ws: Stats, obj: Stats, digest: Digest): boolean {
  if (!ws.isFile() || ws.mtimeMs !== SEAL_MS || (ws.mode & 0o222) !== 0 || ws.size !== obj.size) return false;
  try {
    return digests.outputDigest(path) === digest;
  } catch {
    return false;
  }
}

/** A directory holds exactly the record's files, links (with their targets) and empty directories. */
function sameShape(absPath: string, out: OutputEntry): boolean {
  const files = new Set(out.files!.map((f) => f.path));
  const links = new Map((out.links ?? []).map((l) => [l.path, l.target]));
  const dirs = new Set(out.dirs ?? []);
  let seenFiles = 0;
  let seenLinks = 0;
  let seenDirs = 0;
  const walk = (dir: string, rel: string): boolean => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return false;
    }
    if (names.length === 0 && rel !== '') {
      if (!dirs.has(rel)) return false;
      seenDirs++;
    }
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, name));
      if (st.isDirectory()) {
        if (!walk(join(dir, name), r)) return false;
      } else if (st.isSymbolicLink()) {
        if (links.get(r) !== readlinkSync(join(dir, name))) return false;
        seenLinks++;
      } else {
        if (!files.has(r)) return false;
        seenFiles++;
      }
    }
    return true;
  };
  return walk(absPath, '') && seenFiles === files.size && seenLinks === links.size && seenDirs === dirs.size;
}

/** Whether a record can be served, and whether serving it needs a restore into the workspace. */
export function checkRecord(store: CacheStore, digests: FileDigests, record: NodeRecord, workspace: string, outs: Record<string, string>): { usable: boolean; restore: boolean } {
  if (!matchesNode(record, outs)) return { usable: false, restore: false };
  let restore = false;
  for (const [name, o] of Object.entries(record.outputs)) {
    const state = outputState(store, digests, join(workspace, outs[name]!), o);
    if (state === 'damaged') return { usable: false, restore: false };
    if (state === 'restorable') restore = true;
  }
  return { usable: true, restore };
}

/**
 * A record serves a node only with exactly the node's outputs at the node's paths. The key
 * covers the paths, so an honest record always matches; an edited one is never used.
 */
export function matchesNode(record: NodeRecord, outs: Record<string, string>): boolean {
  const names = Object.keys(outs);
  return Object.keys(record.outputs).length === names.length && names.every((n) => record.outputs[n]?.path === outs[n]);
}

/** Quarantine the modified objects a record names; returns how many. */
export function quarantineModified(store: CacheStore, record: NodeRecord): number {
  let n = 0;
  for (const o of Object.values(record.outputs)) {
    for (const d of o.kind === 'file' ? [o.digest] : o.files!.map((f) => f.digest)) {
      if (objectState(store, d) === 'modified') {
        quarantine(store, d);
        n++;
      }
    }
  }
  return n;
}

/**
 * Re-hash a record's objects (each up to `maxBytes`; larger ones are left to `dfwe verify`)
 * before they are restored into the workspace: a flipped byte with the seal's mtime put back
 * is caught here. Damaged objects are quarantined; returns whether all were intact.
 */
export function verifyRecord(store: CacheStore, record: NodeRecord, maxBytes: number): boolean {
  let intact = true;
  for (const o of Object.values(record.outputs)) {
    const files = o.kind === 'file' ? [{ digest: o.digest, size: o.size }] : o.files!;
    for (const f of files) if (f.size <= maxBytes && !checkObject(store, f.digest)) intact = false;
  }
  return intact;
}

/**
 * What is at an output path may be replaced: nothing is there, the caller knows dfwe wrote it
 * (`owned`: it is what the node's last attempt in this workspace left there, by its stamp, or its
 * lease was taken over from a run that died), or everything there is a sealed copy of a cached
 * object. Anything else is the user's, and dfwe does not delete it.
 */
function assertReplaceable(abs: string, st: Stats | undefined, owned: () => boolean, what: string): void {
  // The cheaper question first: a file's seal is one stat already made; a directory's is a walk.
  if (st === undefined || (st.isDirectory() ? owned() || sealedTree(abs, st) : sealedTree(abs, st) || owned())) return;
  throw new RestoreError(
    `${what} already exists and was not made by dfwe: dfwe replaces an output when its stage runs, so it does not touch this one. Move it away (or delete it), then run again`,
  );
}

/**
 * What is at an output path, as a digest of each entry's name, kind, inode and birth time. An attempt keeps
 * the stamps of the outputs it left, so a later run can tell them from files someone put there
 * since: an edit in place (or a stage's leftover process appending) keeps dfwe's inode; a file
 * copied, saved or created over it, or where the attempt left nothing, is a new one. 'absent' when
 * nothing is there.
 */
export function outputStamp(abs: string): string {
  const st = lstatSafe(abs);
  if (st === undefined) return 'absent';
  const parts: (string | number)[] = [];
  const visit = (p: string, rel: string, s: Stats): void => {
    // The birth time tells a new file that was given a freed inode number from the one that had it.
    parts.push(rel, kindLetter(s), s.dev, s.ino, s.birthtimeMs);
    if (s.isDirectory()) for (const n of readdirSync(p).sort()) visit(join(p, n), rel ? `${rel}/${n}` : n, lstatSync(join(p, n)));
  };
  visit(abs, '', st);
  return keyOf(parts);
}

function kindLetter(s: Stats): string {
  return s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : s.isFile() ? 'f' : 'o';
}

function sealedTree(abs: string, st: Stats): boolean {
  if (st.isDirectory()) return readdirSync(abs).every((n) => sealedTree(join(abs, n), lstatSync(join(abs, n))));
  if (st.isSymbolicLink()) return st.mtimeMs === SEAL_MS;
  return st.isFile() && st.mtimeMs === SEAL_MS && (st.mode & 0o222) === 0;
}

/**
 * Make room for an output at `abs` under its lease: check it really lies inside the workspace and
 * is dfwe's to replace, and remove a temp a dead holder left.
 */
export function prepareOutputPath(bounds: Bounds, abs: string, owned: () => boolean, what: string): void {
  const where = bounds.whereWritten(abs);
  const outside = bounds.outsideAt(abs, where);
  if (outside) throw new RestoreError(`${what} is really ${outside}, outside the workspace (a symlink on its way); nothing was written there`);
  const st = lstatSafe(abs);
  // Only something that is there can hold a repository (most outputs are not there yet).
  const vcs = st && bounds.holdsVcs(abs);
  const forbidden = bounds.forbidden(where!) ?? (vcs ? `holds version-control metadata (${vcs})` : undefined);
  if (forbidden) throw new RestoreError(`${what} ${forbidden}: dfwe deletes an output before its stage runs, so it does not touch it`);
  assertReplaceable(abs, st, owned, what);
  removeIfAny(stagingName(abs));
}

/**
 * Put a cached output at its workspace path: read-only hardlinks to the objects (copies across
 * filesystems), its links and empty directories, swapped in by rename. The caller holds the
 * path's lease and has run prepareOutputPath.
 */
export function materialize(store: CacheStore, digests: FileDigests, absPath: string, out: OutputEntry): void {
  if (outputState(store, digests, absPath, out) === 'materialized') return;
  mkdirSync(dirname(absPath), { recursive: true });
  if (out.kind === 'file') {
    if (lstatSafe(absPath)?.isDirectory()) rmSync(absPath, { recursive: true, force: true });
    linkInto(store.objectPath(out.digest), absPath, stagingName(absPath));
    return;
  }
  const tmp = stagingName(absPath);
  removeIfAny(tmp);
  try {
    mkdirSync(tmp, { recursive: true });
    // Files and directories first, links last: the record's shape (record-shape.ts) puts nothing
    // below a link, and no directory is made through one.
    for (const f of out.files!) {
      const dest = join(tmp, f.path);
      mkdirSync(dirname(dest), { recursive: true });
      linkOrCopy(store.objectPath(f.digest), dest);
    }
    for (const d of out.dirs ?? []) mkdirSync(join(tmp, d), { recursive: true });
    for (const l of out.links ?? []) {
      const dest = join(tmp, l.path);
      mkdirSync(dirname(dest), { recursive: true });
      symlinkSync(l.target, dest);
      lutimesSync(dest, SEAL_MS / 1000, SEAL_MS / 1000);
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  removeIfAny(absPath);
  renameSync(tmp, absPath);
}

function lstatSafe(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function linkOrCopy(src: string, dest: string): void {
  try {
    linkSync(src, dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM') throw err;
    copyFileSync(src, dest);
    // Sealed like the object, so the next run sees the copy is in place without copying again.
    chmodSync(dest, statSync(src).mode & 0o555);
    utimesSync(dest, SEAL_MS / 1000, SEAL_MS / 1000);
  }
}

/** Replace `dest` by a link to `src` atomically (link to a temp name, then rename over). */
export function linkInto(src: string, dest: string, tmp = tmpName(dest)): void {
  mkdirSync(dirname(dest), { recursive: true });
  removeIfAny(tmp);
  linkOrCopy(src, tmp);
  try {
    renameSync(tmp, dest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
