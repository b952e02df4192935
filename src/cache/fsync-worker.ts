import { closeSync, fsyncSync, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

/*
 * The group commit's thread (group-commit.ts): for each batch, open, fsync and close every path
 * in order, and answer with the first error, if any.
 */
parentPort!.on('message', ({ id, paths }: { id: number; paths: string[] }) => {
  let error: { message: string; code?: string } | undefined;
  for (const path of paths) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      // An object moved aside since (quarantined by another run) is found missing where it is
      // used, and recomputed: nothing to make durable here.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      error = { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code };
      break;
    }
    try {
      fsyncSync(fd);
    } catch (err) {
      error = { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code };
    } finally {
      closeSync(fd);
    }
    if (error) break;
  }
  parentPort!.postMessage({ id, error });
});
