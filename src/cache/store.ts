import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../diagnostics.js';
import { keyOf } from '../util/hash.js';
import { writeFileAtomic } from '../util/fsx.js';
import { processAlive } from '../util/process.js';
import type { Digest, ExecKey } from '../util/key-types.js';

/*
 * The cache directory:
 *   objects/ab/<digest>        immutable, read-only file contents, named by their digest
 *   records/ab/<execKey>.json  one small record per executed node: the result of that key
 *   nodes/ab/<id>.json         the last attempt of each node of a workspace (for why/show)
 *   locks/                     leases of running nodes and runs
 *   tmp/                       staging: logs and specs of running nodes, temp names before rename
 *   state/                     memos that only make things faster (file digests, parsed pipelines)
 *   quarantine/                damaged objects, moved aside
 *   tainted/<digest>           when each damaged object was found (never removed: a few bytes each)
 *   CACHEDIR.TAG               the marker: this directory is a dfwe cache, and which format
 * Nothing is rewritten in place: every file appears by rename, so a crash at any moment leaves
 * either the old state or the new one, never a half-written entry.
 *
 * This module is the layout and the staging of running nodes; what the files hold is read and
 * written by records.ts (records and attempts) and objects.ts (stored contents).
 */

/**
 * The marker of a dfwe cache: a Cache Directory Tagging file (backup tools skip the directory),
 * whose dfwe line says the format. gc deletes what it finds in a cache, so dfwe keeps its cache
 * only in a directory it created or found empty, and marked then.
 */
export const CACHE_MARKER = 'CACHEDIR.TAG';
export const CACHE_FORMAT = 1;
const MARKER_TEXT = `Signature: 8a477f597d28d172789f06886806bc55\n# This directory is a cache made by dfwe (a workflow engine); backup tools may skip it.\ndfwe-cache-format: ${CACHE_FORMAT}\n`;

/** What is at a cache root: a dfwe cache, nothing yet (absent or empty), or an error saying why it is not one. */
function cacheDirState(root: string): 'marked' | 'new' {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'new';
    if (code === 'ENOTDIR') throw new UserError({ message: `the cache ${root} is a file, not a directory`, hint: 'give a new or empty directory: --cache DIR or DFWE_CACHE' });
    throw err;
  }
  if (names.includes(CACHE_MARKER)) {
    let text = '';
    try {
      text = readFileSync(join(root, CACHE_MARKER), 'utf8');
    } catch {
      // unreadable: said below as not a dfwe marker
    }
    const format = /^dfwe-cache-format: (\d+)$/m.exec(text)?.[1];
    if (format === undefined) throw new UserError({ message: `the cache ${root} holds a ${CACHE_MARKER} that dfwe did not write: it is another tool's cache, and dfwe does not share it`, hint: 'give a new or empty directory: --cache DIR or DFWE_CACHE' });
    if (Number(format) !== CACHE_FORMAT) throw new UserError({ message: `the cache ${root} has format ${format}, and this dfwe reads format ${CACHE_FORMAT}`, hint: Number(format) > CACHE_FORMAT ? 'it was made by a newer dfwe: use that one, or another cache' : 'it was made by an older dfwe: remove it (results recompute) or use another cache' });
    return 'marked';
  }
  // Another process marking the cache at this moment leaves only its marker's temp file.
  if (names.every((n) => n.startsWith(`${CACHE_MARKER}.tmp-`))) return 'new';
  throw new UserError({
    message: `the cache ${root} is not empty and is not a dfwe cache (it has no ${CACHE_MARKER} marker): dfwe keeps results only in a directory it made, since gc deletes what it finds there`,
    hint: `give a new or empty directory (--cache DIR or DFWE_CACHE). A cache made by dfwe before markers existed holds results of an older format: remove it and they recompute`,
  });
}

/** When a damaged object was damaged, and when that was found (ms). */
export interface Taint {
  damagedAt: number;
  foundAt: number;
}

export class CacheStore {
  private marked: boolean;

  readonly objectsDir: string;
  readonly recordsDir: string;
  readonly nodesDir: string;
  readonly locksDir: string;
  readonly tmpDir: string;
  readonly stateDir: string;
  readonly quarantineDir: string;
  readonly taintedDir: string;
  private taintMap: Map<string, Taint> | undefined;

  constructor(readonly root: string) {
    this.objectsDir = join(root, 'objects');
    this.recordsDir = join(root, 'records');
    this.nodesDir = join(root, 'nodes');
    this.locksDir = join(root, 'locks');
    this.tmpDir = join(root, 'tmp');
    this.stateDir = join(root, 'state');
    this.quarantineDir = join(root, 'quarantine');
    this.taintedDir = join(root, 'tainted');
    this.marked = cacheDirState(root) === 'marked';
  }

  /**
   * Create and mark the cache before anything is written into it. Called where a command first
   * writes (a run's lease, memos, gc, pins, the history); a cache dfwe cannot write is left as it
   * is (the write that follows says so).
   */
  claim(): void {
    if (this.marked) return;
    try {
      mkdirSync(this.root, { recursive: true });
      // Checked again: another process may have filled or marked it meanwhile.
      if (cacheDirState(this.root) === 'new') writeFileAtomic(join(this.root, CACHE_MARKER), MARKER_TEXT);
      this.marked = true;
    } catch (err) {
      if (err instanceof UserError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw err;
    }
  }

  objectPath(digest: Digest): string {
    return join(this.objectsDir, digest.slice(0, 2), digest);
  }

  recordPath(execKey: ExecKey): string {
    return join(this.recordsDir, execKey.slice(0, 2), `${execKey}.json`);
  }

  attemptPath(workspace: string, nodeId: string): string {
    const k = keyOf([workspace, nodeId]);
    return join(this.nodesDir, k.slice(0, 2), `${k}.json`);
  }

  /** Work an attempt of this key left for the next to resume (a search's scored candidates). */
  resumeDir(execKey: ExecKey): string {
    return join(this.stateDir, 'resume', execKey);
  }

  /** Where a node that is running now says so (see records.ts markRunning). */
  runningPath(workspace: string, nodeId: string): string {
    return this.attemptPath(workspace, nodeId).replace(/\.json$/, '.running.json');
  }

  /**
   * Digests of objects found damaged, with when they were damaged (ms), read once per process; empty in a cache
   * where nothing was ever damaged (one readdir).
   */
  taints(): Map<string, Taint> {
    if (this.taintMap) return this.taintMap;
    const map = new Map<string, Taint>();
    let names: string[] = [];
    try {
      names = readdirSync(this.taintedDir);
    } catch {
      // none
    }
    for (const n of names) {
      if (!/^[0-9a-f]{32}$/.test(n)) continue;
      // When it was damaged: the file's mtime; when that was found: its content (see quarantine).
      const path = join(this.taintedDir, n);
      const damagedAt = statSync(path, { throwIfNoEntry: false })?.mtimeMs;
      let foundAt = NaN;
      try {
        foundAt = Number(readFileSync(path, 'utf8'));
      } catch {
        // gone meanwhile
      }
      // Unreadable times: damaged always, found now (every result older than this run is suspect).
      if (damagedAt !== undefined) map.set(n, { damagedAt, foundAt: Number.isFinite(foundAt) ? foundAt : Date.now() });
    }
    return (this.taintMap = map);
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
