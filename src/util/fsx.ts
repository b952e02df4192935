import { isAscii } from 'node:buffer';
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
let counter = 0;

/** A temp name beside `target`, unique across processes (pid) and within one (counter). */
export function tmpName(target: string): string {
  return `${target}.tmp-${process.pid}-${(counter++).toString(36)}`;
}

/**
 * A file's text, for the memos of megabytes a command reads whole: Node decodes UTF-8 at a third
 * of the speed it copies Latin-1, and they are ASCII but for names in other scripts (an
 * 11.9 MB expansion memo: 150 ms read as UTF-8, 80-100 ms as bytes and Latin-1).
 */
export function readTextFile(path: string): string {
  const bytes = readFileSync(path);
  return bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
}

/**
 * A small file's text, or undefined where it is missing or cannot be read. Missing is told by a
 * stat that does not throw: most lookups of a run miss (a key not cached yet, a node's first
 * attempt), and a failed read's exception cost 6-12 us each (10,000 misses: 62-126 ms, against
 * 9-11 ms for the stats).
 */
export function readTextIfAny(path: string): string | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false }) ? readFileSync(path, 'utf8') : undefined;
  } catch {
    return undefined; // not a file, a way that is not a directory, unreadable
  }
}

/**
 * Remove what is at `path` (a whole tree), where anything is. Most of the paths a run clears are
 * not there (a node's outputs before its first run, the temp names it stages through), and rmSync
 * tells that by an exception: 8-9 us a miss, against 1 us for a stat that does not throw.
 */
export function removeIfAny(path: string): void {
  try {
    if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return;
  } catch {
    // a way that is not a directory, unreadable: rmSync says so as it always did
  }
  rmSync(path, { recursive: true, force: true });
}

/**
 * Remove a file this process made, where it still is (as it almost always is): one unlink, where
 * rmSync stats it twice first.
 */
export function unlinkIfAny(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * write-temp + rename: readers see the old file or the whole new one, never a part, whatever
 * happens to this process. `durable` adds an fsync before the rename, so that after a power
 * loss the file is not a renamed empty one; advisory files (memos, last-attempt pointers) skip
 * it, since a damaged one is read as absent.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: { durable?: boolean } = {}): void {
  try {
    writeTemp(path, data, opts.durable ?? true);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true });
    writeTemp(path, data, opts.durable ?? true);
  }
}

/** All of `bytes` at the fd's position: a write may be short when the disk fills, so loop until done or ENOSPC is thrown. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
}

function writeTemp(path: string, data: string | Uint8Array, durable: boolean): void {
  const tmp = tmpName(path);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
    if (durable) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
