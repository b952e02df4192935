import { close, fsync, open } from 'node:fs';
import { dirname } from 'node:path';

/*
 * Group commit. Making a file durable costs an fsync, about a millisecond here, and a node's
 * results are several files (its objects, then its record). Done one by one on the engine's
 * thread, fsyncs were a fifth of a 2,000-node run. Instead, every node's files join the next
 * flush: one flush at a time fsyncs all the files (and their directories) that joined it, in
 * parallel on libuv's threads, while the engine goes on starting stages. A node's files are
 * durable when its `durable()` resolves; what it publishes after that (its record) names only
 * durable content, so a power loss can lose a result but never leave a record of lost bytes.
 */
export class GroupCommit {
  private pending: { paths: Set<string>; waiters: { resolve(): void; reject(e: unknown): void }[] } | undefined;
  private flushing = false;

  /** Resolves once every path (and its directory entry) is on disk. */
  durable(paths: Iterable<string>): Promise<void> {
    const batch = (this.pending ??= { paths: new Set(), waiters: [] });
    for (const p of paths) batch.paths.add(p);
    const done = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    // Started on the next turn of the loop: whatever else finishes in this one joins the flush.
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => void this.drain());
    }
    return done;
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const batch = this.pending;
      this.pending = undefined;
      try {
        await syncAll(batch.paths);
        batch.waiters.forEach((w) => w.resolve());
      } catch (err) {
        batch.waiters.forEach((w) => w.reject(err));
      }
    }
    this.flushing = false;
  }
}

async function syncAll(paths: Set<string>): Promise<void> {
  const dirs = new Set<string>();
  for (const p of paths) dirs.add(dirname(p));
  // Files first, then the directories that name them.
  await Promise.all([...paths].map(fsyncOne));
  await Promise.all([...dirs].map(fsyncOne));
}

function fsyncOne(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (err, fd) => {
      if (err) {
        // An object moved aside since (quarantined by another run) is found missing where it is
        // used, and recomputed: nothing to make durable here.
        if (err.code === 'ENOENT') resolve();
        else reject(err);
        return;
      }
      fsync(fd, (syncErr) => close(fd, () => (syncErr ? reject(syncErr) : resolve())));
    });
  });
}
