import { utimesSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/*
 * Lease heartbeats: the mtimes of the lock files a process holds, refreshed so that a run on
 * another host does not judge a live run dead. A timer on the event loop does it, except during
 * long synchronous work (committing hundreds of thousands of files, re-hashing gigabytes), when
 * the loop cannot: then a worker thread takes over. The worker lives only that long, because a
 * second thread makes every fork of a stage process slower (measured: 0.7 ms per node).
 */

export const HEARTBEAT_MS = Number(process.env.DFWE_LEASE_HEARTBEAT_MS) || 10_000;

const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { utimesSync } = require('node:fs');
const held = new Set(workerData.paths);
parentPort.on('message', (m) => { if (m.on) held.add(m.path); else held.delete(m.path); });
const beat = () => {
  const now = new Date();
  for (const p of held) { try { utimesSync(p, now, now); } catch {} }
};
beat();
setInterval(beat, workerData.ms);
`;

function touch(paths: Iterable<string>): void {
  const now = new Date();
  for (const p of paths) {
    try {
      utimesSync(p, now, now);
    } catch {
      // released, or broken by someone who judged us dead: nothing to refresh
    }
  }
}

export class Heartbeat {
  private readonly held = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private worker: Worker | undefined;
  private heavy = 0;

  add(path: string): void {
    this.held.add(path);
    this.worker?.postMessage({ path, on: true });
    if (!this.timer) {
      this.timer = setInterval(() => touch(this.held), HEARTBEAT_MS);
      this.timer.unref();
    }
  }

  remove(path: string): void {
    this.held.delete(path);
    this.worker?.postMessage({ path, on: false });
  }

  /** Run `work`, which keeps this thread busy for long, with the heartbeat on a worker thread meanwhile. */
  during<T>(work: () => T): T {
    if (this.heavy++ === 0 && this.held.size > 0) {
      this.worker = new Worker(SOURCE, { eval: true, workerData: { ms: HEARTBEAT_MS, paths: [...this.held] } });
      this.worker.unref();
    }
    try {
      return work();
    } finally {
      if (--this.heavy === 0 && this.worker) {
        void this.worker.terminate();
        this.worker = undefined;
        touch(this.held);
      }
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    void this.worker?.terminate();
    this.worker = undefined;
  }
}
