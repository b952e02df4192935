import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { keyOf } from '../util/hash.js';
import { processAlive } from '../util/process.js';

/*
 * The cache directory:
 *   objects/ab/<digest>        immutable, read-only file contents, named by their digest
 *   records/ab/<execKey>.json  one small record per executed node: the result of that key
 *   nodes/ab/<id>.json         the last attempt of each node of a workspace (for why/show)
 *   locks/                     leases of running nodes and runs
 *   tmp/                       staging: logs and specs of running nodes, temp names before rename
 *   state/                     memos that only make things faster (file digests, parsed pipelines)
 *   quarantine/                damaged objects, moved aside
 * Nothing is rewritten in place: every file appears by rename, so a crash at any moment leaves
 * either the old state or the new one, never a half-written entry.
 *
 * This module is the layout and the staging of running nodes; what the files hold is read and
 * written by records.ts (records and attempts) and objects.ts (stored contents).
 */

export class CacheStore {
  readonly objectsDir: string;
  readonly recordsDir: string;
  readonly nodesDir: string;
  readonly locksDir: string;
  readonly tmpDir: string;
  readonly stateDir: string;
  readonly quarantineDir: string;

  constructor(readonly root: string) {
    this.objectsDir = join(root, 'objects');
    this.recordsDir = join(root, 'records');
    this.nodesDir = join(root, 'nodes');
    this.locksDir = join(root, 'locks');
    this.tmpDir = join(root, 'tmp');
    this.stateDir = join(root, 'state');
    this.quarantineDir = join(root, 'quarantine');
  }

  objectPath(digest: string): string {
    return join(this.objectsDir, digest.slice(0, 2), digest);
  }

  recordPath(execKey: string): string {
    return join(this.recordsDir, execKey.slice(0, 2), `${execKey}.json`);
  }

  attemptPath(workspace: string, nodeId: string): string {
    const k = keyOf([workspace, nodeId]);
    return join(this.nodesDir, k.slice(0, 2), `${k}.json`);
  }

  /** A staging directory for one run's node files (logs, specs); removed when the run ends. */
  runStaging(): string {
    const dir = join(this.tmpDir, `run-${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Remove staging directories of runs that died (kill -9, power loss): their pid is gone. */
  cleanDeadStaging(): void {
    let names: string[];
    try {
      names = readdirSync(this.tmpDir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = /^run-(\d+)-/.exec(name);
      if (m && !processAlive(Number(m[1]))) rmSync(join(this.tmpDir, name), { recursive: true, force: true });
    }
  }
}
