import { closeSync, constants, fstatSync, openSync, type Stats } from 'node:fs';

/*
 * Opening files that a stage or a user made: a FIFO, a device or a symlink can stand where a
 * file is expected. Opening a FIFO for reading blocks the whole process (and so Ctrl-C) until a
 * writer comes; /dev/zero never ends. So files are opened non-blocking and checked through the
 * descriptor before one byte is read, and outputs are opened without following a final symlink.
 */

/** A path that holds something dfwe will not read or store (a FIFO, a device, a link out). */
export class FsShapeError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

export function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'an unknown kind of file';
}

/**
 * Open a regular file for reading. `follow: false` refuses a symlink in the last component
 * (ELOOP from O_NOFOLLOW). Returns the descriptor and its fstat, which describe the very inode
 * that will be read.
 */
export function openRegular(path: string, opts: { follow: boolean; what?: string }): { fd: number; st: Stats } {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (opts.follow ? 0 : constants.O_NOFOLLOW);
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new FsShapeError(path, `${opts.what ?? path} is ${opts.follow ? 'a symlink loop' : 'a symlink'}`);
    throw err;
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new FsShapeError(path, `${opts.what ?? path} is ${kindOf(st)}, not a regular file`);
  }
  return { fd, st };
}

/** Errors of the machine rather than of dfwe: said as what happened and what to do, never as a stack trace. */
const ENVIRONMENT_CODES: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the filesystem is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files on this machine',
  EIO: 'an I/O error from the disk',
  ENAMETOOLONG: 'a path is too long',
};

export function isEnvironmentError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code in ENVIRONMENT_CODES;
}

/** "/x/y: the disk is full (ENOSPC)": the path and what happened; callers say what they were doing. */
export function describeFsError(err: NodeJS.ErrnoException): string {
  const what = err.code ? ENVIRONMENT_CODES[err.code] : undefined;
  if (!what) return err.message;
  return `${err.path ? `${err.path}: ` : ''}${what} (${err.code})`;
}
