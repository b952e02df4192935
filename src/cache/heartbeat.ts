import { Worker } from 'node:worker_threads';

/*
 * Lease heartbeats (the lock file's mtime, refreshed) come from a worker thread, not the main
 * event loop: committing a large output is synchronous and can take minutes, and a run on
 * another host must not judge a live run dead meanwhile. The worker is started only once a
 * lease has been held for a while (or before a long commit), so short runs never pay for it.
 */

export const HEARTBEAT_MS = Number(process.env.DFWE_LEASE_HEARTBEAT_MS) || 10_000;

const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { utimesSync } = require('node:fs');
const held = new Set(workerData.paths);
parentPort.on('message', (m) => { if (m.on) held.add(m.path); else held.delete(m.path); });
setInterval(() => {
  const now = new Date();
  for (const p of held) { try { utimesSync(p, now, now); } catch {} }
}, workerData.ms);
`;

export class Heartbeat {
  private readonly held = new Set<string>();
  private worker: Worker | undefined;
  private timer: NodeJS.Timeout | undefined;

  add(path: string): void {
    this.held.add(path);
    if (this.worker) this.worker.postMessage({ path, on: true });
    else if (!this.timer) {
      this.timer = setTimeout(() => this.start(), HEARTBEAT_MS / 2);
      this.timer.unref();
    }
  }

  remove(path: string): void {
    this.held.delete(path);
    this.worker?.postMessage({ path, on: false });
  }

  /** Before a long synchronous step: from now on the heartbeat does not depend on this thread. */
  start(): void {
    if (this.worker || this.held.size === 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.worker = new Worker(SOURCE, { eval: true, workerData: { ms: HEARTBEAT_MS, paths: [...this.held] } });
    this.worker.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    void this.worker?.terminate();
    this.worker = undefined;
  }
}
