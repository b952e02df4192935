import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Fingerprint } from '../keys/fingerprint.js';
import { digestFile, keyOf } from '../util/hash.js';
import { writeFileAtomic } from '../util/fsx.js';
import { processAlive } from '../util/process.js';
import { isRecordShape, isAttemptShape } from './record-shape.js';

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
 */

/*
 * Objects are sealed with a fixed mtime. Workspace outputs are hardlinks to objects, and root
 * ignores the read-only bit, so a write into a workspace output changes the object itself; it
 * also sets the shared inode's mtime to "now", so one stat shows the object is no longer what
 * was stored. Such an object is quarantined and the node that made it runs again.
 */
export const SEAL_MS = Date.UTC(2000, 0, 1);

export const RECORD_FORMAT = 2;

export interface OutputFile {
  path: string;
  digest: string;
  size: number;
  exec: boolean;
}

/** A symlink inside a directory output, stored as a link (its target stays inside the output). */
export interface OutputLink {
  path: string;
  target: string;
}

export interface OutputEntry {
  path: string;
  kind: 'file' | 'dir';
  /** For a file its content digest; for a directory the digest of its manifest. */
  digest: string;
  size: number;
  /** For a directory: its files, relative to it. */
  files?: OutputFile[];
  links?: OutputLink[];
  /** Empty directories inside it: they are part of what it holds and are restored. */
  dirs?: string[];
}

export interface NodeRecord {
  format: typeof RECORD_FORMAT;
  nodeId: string;
  planKey: string;
  execKey: string;
  fingerprint: Fingerprint;
  outputs: Record<string, OutputEntry>;
  /** Digest of the log object. */
  log?: string;
  metrics?: Record<string, number>;
  startedAt: string;
  durationMs: number;
  host: string;
}

export interface NodeAttempt {
  nodeId: string;
  status: 'succeeded' | 'failed';
  execKey: string;
  planKey: string;
  at: string;
  durationMs: number;
  exitCode?: number | null;
  error?: string;
  log?: string;
  host: string;
  /** What the attempt was keyed on, so `dfwe why` can say what changed since. */
  fingerprint?: Fingerprint;
}

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

  private attemptPath(workspace: string, nodeId: string): string {
    const k = keyOf([workspace, nodeId]);
    return join(this.nodesDir, k.slice(0, 2), `${k}.json`);
  }

  /**
   * The record of a key, if present, whole and well-formed. A record is written last, by rename;
   * one that was edited or damaged (a path leading out, a digest that is not one) is never served.
   */
  readRecord(execKey: string): NodeRecord | undefined {
    let r: unknown;
    try {
      r = JSON.parse(readFileSync(this.recordPath(execKey), 'utf8'));
    } catch {
      return undefined;
    }
    return isRecordShape(r, execKey) ? r : undefined;
  }

  /** Written whole by rename; the caller makes it durable (group commit) and its objects before it. */
  writeRecord(record: NodeRecord): void {
    writeFileAtomic(this.recordPath(record.execKey), JSON.stringify(record), { durable: false });
  }

  readAttempt(workspace: string, nodeId: string): NodeAttempt | undefined {
    try {
      const a: unknown = JSON.parse(readFileSync(this.attemptPath(workspace, nodeId), 'utf8'));
      return isAttemptShape(a, nodeId) ? a : undefined;
    } catch {
      return undefined;
    }
  }

  /** Advisory (for why and show): a full disk here costs an explanation, never a result. */
  writeAttempt(workspace: string, attempt: NodeAttempt): void {
    try {
      writeFileAtomic(this.attemptPath(workspace, attempt.nodeId), JSON.stringify(attempt), { durable: false });
    } catch {
      // the record, written before, is what counts
    }
  }

  objectState(digest: string): 'ok' | 'missing' | 'modified' {
    try {
      return statSync(this.objectPath(digest)).mtimeMs === SEAL_MS ? 'ok' : 'modified';
    } catch {
      return 'missing';
    }
  }

  /** Present and unmodified since it was stored. */
  hasObject(digest: string): boolean {
    return this.objectState(digest) === 'ok';
  }

  /** Move a damaged object aside (kept for inspection), so it is never served again. */
  quarantine(digest: string): void {
    mkdirSync(this.quarantineDir, { recursive: true });
    try {
      renameSync(this.objectPath(digest), join(this.quarantineDir, `${digest}-${Date.now()}`));
    } catch {
      // already moved by another run
    }
  }

  readObject(digest: string): Buffer {
    return readFileSync(this.objectPath(digest));
  }

  /** Re-hash one object; one whose bytes no longer match its name is quarantined. */
  checkObject(digest: string): boolean {
    let actual: string | undefined;
    try {
      actual = digestFile(this.objectPath(digest), { follow: false });
    } catch {
      actual = undefined;
    }
    if (actual === digest) return true;
    this.quarantine(digest);
    return false;
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

export function localHost(): string {
  return hostname();
}

/** Every object a record names. */
export function objectsOf(record: NodeRecord): string[] {
  const out: string[] = [];
  for (const o of Object.values(record.outputs)) {
    if (o.kind === 'file') out.push(o.digest);
    else out.push(...o.files!.map((f) => f.digest));
  }
  if (record.log) out.push(record.log);
  return out;
}
