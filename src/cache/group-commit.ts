import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';

/*
 * Group commit. Making a file durable costs an fsync, about a millisecond here, and a node's
 * results are several files (its objects, then its record). Done one by one on the engine's
 * thread, fsyncs were a fifth of a 2,000-node run. Instead, every node's files join the next
 * flush: one flush at a time fsyncs all the files (and then their directories) that joined it,
 * on a thread of its own, while the engine goes on starting stages. A node's files are durable
 * when its `durable()` resolves; what it publishes after that (its record) names only durable
 * content, so a power loss can lose a result but never leave a record of lost bytes.
 *
 * The thread is a worker of ours (fsync-worker.ts) doing plain blocking calls, not libuv's pool: a 20,002-node run
 * once hung with the pool idle and one of its close() requests never completed (an fd left open,
 * its callback never called; not reproduced since), and a hang there stops the whole run.
 */

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

export class GroupCommit {
  private pending: { paths: Set<string>; waiters: Waiter[] } | undefined;
  private flushing = false;
  private worker: Worker | undefined;
  private inFlight: { id: number; done: (error?: { message: string; code?: string }) => void } | undefined;
  private nextId = 1;

  /**
   * A flush is coming (a stage was started): the thread starts now, while the stage runs. Started
   * by the first flush, it took 25-35 ms here, after the stage and before the next could start.
   */
  warm(): void {
    if (!this.flushing) this.syncer().unref();
  }

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
        await this.syncAll(batch.paths);
        batch.waiters.forEach((w) => w.resolve());
      } catch (err) {
        batch.waiters.forEach((w) => w.reject(err));
      }
    }
    this.flushing = false;
    // Idle: the worker does not keep the process alive.
    this.worker?.unref();
  }

  /** Files first, then the directories that name them. */
  private syncAll(paths: Set<string>): Promise<void> {
    const dirs = new Set<string>();
    for (const p of paths) dirs.add(dirname(p));
    const worker = this.syncer();
    worker.ref();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.inFlight = {
        id,
        done: (error) => {
          this.inFlight = undefined;
          if (!error) resolve();
          else reject(Object.assign(new Error(error.message), { code: error.code }));
        },
      };
      worker.postMessage({ id, paths: [...paths, ...dirs] });
    });
  }

  private syncer(): Worker {
    if (this.worker) return this.worker;
    // Not the process's own flags (--input-type, --eval…): they may not apply to a file.
    const worker = new Worker(new URL('./fsync-worker.js', import.meta.url), { execArgv: [] });
    worker.on('message', (m: { id: number; error?: { message: string; code?: string } }) => {
      if (this.inFlight?.id === m.id) this.inFlight.done(m.error);
    });
    // A worker that died (out of memory): the batch in flight fails, the next starts a new one.
    const lost = (err?: unknown): void => {
      if (this.worker === worker) this.worker = undefined;
      this.inFlight?.done({ message: `the thread that makes results durable stopped${err instanceof Error ? `: ${err.message}` : ''}` });
    };
    worker.on('error', lost);
    worker.on('exit', () => lost());
    this.worker = worker;
    return worker;
  }
}
