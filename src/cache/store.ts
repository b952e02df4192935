import {
  chmodSync, copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync,
  renameSync, rmSync, statSync, utimesSync, type Stats,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { Fingerprint } from '../keys/fingerprint.js';
import { digestBytes, digestFile, keyOf } from '../util/hash.js';
import { fsyncPath, tmpName, writeFileAtomic } from '../util/fsx.js';
import { processAlive } from '../util/process.js';

/*
 * The cache directory:
 *   objects/ab/<digest>        immutable, read-only file contents, named by their digest
 *   records/ab/<execKey>.json  one small record per executed node: the result of that key
 *   nodes/ab/<id>.json         the last attempt of each node of a workspace (for why/show)
 *   locks/                     per-key leases of running nodes
 *   tmp/                       staging: logs and specs of running nodes, temp names before rename
 *   state/                     memos that only make things faster (file digests, parsed pipelines)
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

export interface OutputFile {
  path: string;
  digest: string;
  size: number;
  exec: boolean;
}

export interface OutputEntry {
  path: string;
  kind: 'file' | 'dir';
  /** For a file its content digest; for a directory the digest of its manifest. */
  digest: string;
  size: number;
  /** For a directory: its files, relative to it. */
  files?: OutputFile[];
}

export interface NodeRecord {
  format: 1;
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

  /** The record of a key, if present and whole (a record is written last, by rename). */
  readRecord(execKey: string): NodeRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.recordPath(execKey), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const r = JSON.parse(text) as NodeRecord;
      return r.format === 1 && r.execKey === execKey ? r : undefined;
    } catch {
      return undefined;
    }
  }

  writeRecord(record: NodeRecord): void {
    writeFileAtomic(this.recordPath(record.execKey), JSON.stringify(record));
  }

  readAttempt(workspace: string, nodeId: string): NodeAttempt | undefined {
    try {
      return JSON.parse(readFileSync(this.attemptPath(workspace, nodeId), 'utf8')) as NodeAttempt;
    } catch {
      return undefined;
    }
  }

  writeAttempt(workspace: string, attempt: NodeAttempt): void {
    writeFileAtomic(this.attemptPath(workspace, attempt.nodeId), JSON.stringify(attempt), { durable: false });
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

  /**
   * Move a finished file into the object store and leave the workspace path as a read-only
   * hardlink to the object (or a copy across filesystems). Durable before it is visible: the
   * content is fsynced, then the object appears by rename.
   */
  ingestFile(absPath: string, st: Stats = statSync(absPath)): OutputFile & { digest: string } {
    // Hash and fsync through one descriptor: the content is durable before the object appears.
    const digest = digestFile(absPath, true);
    const obj = this.objectPath(digest);
    const exec = (st.mode & 0o111) !== 0;
    const state = this.objectState(digest);
    if (state === 'modified') this.quarantine(digest);
    if (state === 'ok') {
      linkInto(obj, absPath);
    } else {
      const tmp = tmpName(obj);
      let copied = false;
      try {
        linkSync(absPath, tmp);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          // the fan-out directory does not exist yet: make it once, not per object
          mkdirSync(dirname(obj), { recursive: true });
          return this.ingestFile(absPath, st);
        }
        if (code !== 'EXDEV') throw err;
        copied = true;
      }
      try {
        if (copied) {
          copyFileSync(absPath, tmp);
          fsyncPath(tmp);
        }
        chmodSync(tmp, exec ? 0o555 : 0o444);
        utimesSync(tmp, SEAL_MS / 1000, SEAL_MS / 1000);
        renameSync(tmp, obj);
      } catch (e) {
        // A full disk mid-copy: no partial temp file outlives the failure.
        rmSync(tmp, { force: true });
        throw e;
      }
      if (copied) linkInto(obj, absPath);
    }
    return { path: absPath, digest, size: st.size, exec };
  }

  /** Ingest one declared output (file or directory tree). */
  ingestOutput(absPath: string, relPath: string): OutputEntry {
    const st = statSync(absPath);
    if (!st.isDirectory()) {
      const f = this.ingestFile(absPath, st);
      return { path: relPath, kind: 'file', digest: f.digest, size: f.size };
    }
    const files: OutputFile[] = [];
    const walk = (dir: string, rel: string): void => {
      for (const name of readdirSync(dir).sort()) {
        const abs = join(dir, name);
        const s = statSync(abs);
        const r = rel ? `${rel}/${name}` : name;
        if (s.isDirectory()) walk(abs, r);
        else {
          const f = this.ingestFile(abs, s);
          files.push({ path: r, digest: f.digest, size: f.size, exec: f.exec });
        }
      }
    };
    walk(absPath, '');
    const manifest = files.map((f) => `${f.path}\0${f.exec ? 'x' : '-'}\0${f.digest}`).join('\n');
    return { path: relPath, kind: 'dir', digest: digestBytes(`dir\0${manifest}`), size: files.reduce((a, f) => a + f.size, 0), files };
  }

  /** Quarantine the modified objects a record names; returns how many. */
  quarantineModified(record: NodeRecord): number {
    let n = 0;
    for (const o of Object.values(record.outputs)) {
      for (const d of o.kind === 'file' ? [o.digest] : o.files!.map((f) => f.digest)) {
        if (this.objectState(d) === 'modified') {
          this.quarantine(d);
          n++;
        }
      }
    }
    return n;
  }

  /**
   * One output of a record, against the cache and the workspace: 'materialized' (the workspace
   * path is a hardlink to the intact object), 'restorable' (the object is intact, the workspace
   * differs) or 'damaged' (an object is missing or was modified).
   */
  outputState(absPath: string, out: OutputEntry): 'materialized' | 'restorable' | 'damaged' {
    const files = out.kind === 'file' ? [{ rel: '', digest: out.digest }] : out.files!.map((f) => ({ rel: f.path, digest: f.digest }));
    let linked = true;
    for (const f of files) {
      let obj: Stats;
      try {
        obj = statSync(this.objectPath(f.digest));
      } catch {
        return 'damaged';
      }
      if (obj.mtimeMs !== SEAL_MS) return 'damaged';
      if (linked) {
        const ws = lstatSafe(f.rel ? join(absPath, f.rel) : absPath);
        linked = ws !== undefined && ws.ino === obj.ino && ws.dev === obj.dev;
      }
    }
    if (linked && out.kind === 'dir' && countFiles(absPath) !== files.length) linked = false;
    return linked ? 'materialized' : 'restorable';
  }

  /**
   * Re-hash a record's objects (each up to `maxBytes`; larger ones are left to `dfwe verify`)
   * before they are restored into the workspace: a flipped byte with the seal's mtime put back
   * is caught here. Damaged objects are quarantined; returns whether all were intact.
   */
  verifyRecord(record: NodeRecord, maxBytes: number): boolean {
    let intact = true;
    for (const o of Object.values(record.outputs)) {
      const files = o.kind === 'file' ? [{ digest: o.digest, size: o.size }] : o.files!;
      for (const f of files) if (f.size <= maxBytes && !this.checkObject(f.digest)) intact = false;
    }
    return intact;
  }

  /** Re-hash one object; one whose bytes no longer match its name is quarantined. */
  checkObject(digest: string): boolean {
    let actual: string | undefined;
    try {
      actual = digestFile(this.objectPath(digest));
    } catch {
      actual = undefined;
    }
    if (actual === digest) return true;
    this.quarantine(digest);
    return false;
  }

  /** Whether a record can be served, and whether serving it needs a restore into the workspace. */
  checkRecord(record: NodeRecord, workspace: string): { usable: boolean; restore: boolean } {
    let restore = false;
    for (const o of Object.values(record.outputs)) {
      const state = this.outputState(join(workspace, o.path), o);
      if (state === 'damaged') return { usable: false, restore: false };
      if (state === 'restorable') restore = true;
    }
    return { usable: true, restore };
  }

  isMaterialized(absPath: string, out: OutputEntry): boolean {
    return this.outputState(absPath, out) === 'materialized';
  }

  /** Put a cached output at its workspace path: read-only hardlinks to the objects, swapped in by rename. */
  materialize(absPath: string, out: OutputEntry): void {
    if (this.isMaterialized(absPath, out)) return;
    mkdirSync(dirname(absPath), { recursive: true });
    if (out.kind === 'file') {
      if (lstatSafe(absPath)?.isDirectory()) rmSync(absPath, { recursive: true, force: true });
      linkInto(this.objectPath(out.digest), absPath);
      return;
    }
    const tmp = tmpName(absPath);
    mkdirSync(tmp, { recursive: true });
    for (const f of out.files!) {
      const dest = join(tmp, f.path);
      mkdirSync(dirname(dest), { recursive: true });
      linkOrCopy(this.objectPath(f.digest), dest);
    }
    rmSync(absPath, { recursive: true, force: true });
    renameSync(tmp, absPath);
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

  /** Store a log (or any small blob) as an object; returns its digest. */
  putBlob(absPath: string): string {
    const f = this.ingestFile(absPath);
    return f.digest;
  }
}

export function localHost(): string {
  return hostname();
}

function lstatSafe(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

function linkOrCopy(src: string, dest: string): void {
  try {
    linkSync(src, dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM') throw err;
    copyFileSync(src, dest);
    chmodSync(dest, 0o444);
  }
}

/** Replace `dest` by a link to `src` atomically (link to a temp name, then rename over). */
function linkInto(src: string, dest: string): void {
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = tmpName(dest);
  linkOrCopy(src, tmp);
  renameSync(tmp, dest);
}
