import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
let counter = 0;

/** A temp name beside `target`, unique across processes (pid) and within one (counter). */
export function tmpName(target: string): string {
  return `${target}.tmp-${process.pid}-${(counter++).toString(36)}`;
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
