import { posix } from 'node:path';
import type { Fingerprint } from '../keys/fingerprint.js';
import type { Digest, ExecKey, PlanKey } from '../util/key-types.js';

/** Format 3: records carry a checksum (`check`), so an edited record is absent, not served. */
export const RECORD_FORMAT = 3;

/* What a record and an attempt hold (records.ts reads and writes them; this file checks them). */

export interface OutputFile {
  path: string;
  digest: Digest;
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
  digest: Digest;
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
  planKey: PlanKey;
  execKey: ExecKey;
  fingerprint: Fingerprint;
  outputs: Record<string, OutputEntry>;
  /** Digest of the log object. */
  log?: Digest;
  metrics?: Record<string, number>;
  startedAt: string;
  durationMs: number;
  host: string;
  /** The GPUs the stage was given (CUDA_VISIBLE_DEVICES), when it held gpu tokens. */
  gpus?: string[];
  /** Peak resident memory of the stage's processes (bytes), where the executor measured it. */
  peakRssBytes?: number;
  /**
   * The keys of the upstream records whose outputs the stage read: if one of their objects is
   * later found damaged, this result may hold what it read and is not served (lookupResult).
   */
  reads?: ExecKey[];
  /** The key of everything else in the record (writeRecord sets it): an edited record fails it. */
  check?: string;
}

export interface NodeAttempt {
  nodeId: string;
  status: 'succeeded' | 'failed';
  execKey: ExecKey;
  planKey: PlanKey;
  at: string;
  durationMs: number;
  peakRssBytes?: number;
  exitCode?: number | null;
  /** Why it failed (runner.ts's FailureKind), as data. */
  kind?: string;
  error?: string;
  log?: Digest;
  host: string;
  /** The GPUs the stage was given (CUDA_VISIBLE_DEVICES), when it held gpu tokens. */
  gpus?: string[];
  /** What the attempt was keyed on, so `dfwe why` can say what changed since. */
  fingerprint?: Fingerprint;
  /**
   * What it left at its output paths (restore.ts's outputStamp): the next run replaces an output
   * only while it is still that.
   */
  left?: [path: string, stamp: string][];
}


/*
 * Records and attempts are files anyone can edit, and a restore writes where a record says.
 * So nothing read from the cache is trusted for its shape: a path that is not a clean
 * workspace-relative path, a digest that is not a digest, a number that is not a number, and
 * the whole entry is treated as absent (the node recomputes), never followed.
 */

const DIGEST = /^[0-9a-f]{32}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** A relative path that stays where it is put: no `..`, no absolute path, no empty or `.` segment. */
export function isCleanRelative(p: unknown): p is string {
  return typeof p === 'string' && p !== '' && !p.includes('\0') && !p.startsWith('/') && posix.normalize(p) === p && p !== '.' && p !== '..' && !p.startsWith('../');
}

/**
 * Whether a link's target, read from where the link sits in its output, leaves the output: it is
 * absolute, climbs above the output, or passes through another of the output's links (whose own
 * target is not where the name seems to lead). `linkPaths`: every link of the output.
 */
export function linkLeaves(linkPath: string, target: string, linkPaths: ReadonlySet<string>): boolean {
  if (target.startsWith('/')) return true;
  const at = linkPath.split('/').slice(0, -1);
  const segments = target.split('/').filter((s) => s !== '' && s !== '.');
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '..') {
      if (at.length === 0) return true;
      at.pop();
      continue;
    }
    at.push(s);
    if (i < segments.length - 1 && linkPaths.has(at.join('/'))) return true;
  }
  return false;
}

/**
 * A directory output's entries form a tree a restore can build without writing through anything:
 * every path once, and none below a file, a link or an empty directory of the same output.
 */
function isTree(paths: readonly string[], leaves: ReadonlySet<string>): boolean {
  if (new Set(paths).size !== paths.length) return false;
  for (const p of paths) {
    for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) if (leaves.has(p.slice(0, i))) return false;
  }
  return true;
}

function isOutputEntry(o: unknown): boolean {
  if (!isObject(o) || !isCleanRelative(o.path) || !isString(o.digest) || !DIGEST.test(o.digest) || !isCount(o.size)) return false;
  if (o.kind === 'file') return o.files === undefined && o.links === undefined && o.dirs === undefined;
  if (o.kind !== 'dir' || !Array.isArray(o.files)) return false;
  const filesOk = o.files.every((f: unknown) => isObject(f) && isCleanRelative(f.path) && isString(f.digest) && DIGEST.test(f.digest) && isCount(f.size) && typeof f.exec === 'boolean');
  const linksOk = o.links === undefined || (Array.isArray(o.links) && o.links.every((l: unknown) => isObject(l) && isCleanRelative(l.path) && isString(l.target) && l.target !== '' && !l.target.includes('\0')));
  const dirsOk = o.dirs === undefined || (Array.isArray(o.dirs) && o.dirs.every(isCleanRelative));
  if (!filesOk || !linksOk || !dirsOk) return false;
  const files = (o.files as { path: string }[]).map((f) => f.path);
  const links = ((o.links ?? []) as { path: string; target: string }[]);
  const linkPaths = new Set(links.map((l) => l.path));
  const all = [...files, ...linkPaths, ...((o.dirs ?? []) as string[])];
  return isTree(all, new Set(all)) && links.every((l) => !linkLeaves(l.path, l.target, linkPaths));
}

export function isRecordShape(r: unknown, execKey: string): r is NodeRecord {
  if (!isObject(r) || r.format !== RECORD_FORMAT || r.execKey !== execKey || !isString(r.nodeId) || !isString(r.planKey) || !isObject(r.fingerprint)) return false;
  if (!isObject(r.outputs) || !Object.values(r.outputs).every(isOutputEntry)) return false;
  if (r.log !== undefined && !(isString(r.log) && DIGEST.test(r.log))) return false;
  if (r.metrics !== undefined && !(isObject(r.metrics) && Object.values(r.metrics).every((v) => typeof v === 'number'))) return false;
  if (r.peakRssBytes !== undefined && !isCount(r.peakRssBytes)) return false;
  if (r.reads !== undefined && !(Array.isArray(r.reads) && r.reads.every((k) => isString(k) && DIGEST.test(k)))) return false;
  if (r.check !== undefined && !isString(r.check)) return false;
  if (r.gpus !== undefined && !(Array.isArray(r.gpus) && r.gpus.every(isString))) return false;
  return isString(r.startedAt) && isCount(r.durationMs) && isString(r.host);
}

export function isAttemptShape(a: unknown, nodeId: string): a is NodeAttempt {
  if (!isObject(a) || a.nodeId !== nodeId || (a.status !== 'succeeded' && a.status !== 'failed')) return false;
  if (!isString(a.execKey) || !isString(a.planKey) || !isString(a.at) || !isString(a.host)) return false;
  if (a.log !== undefined && !(isString(a.log) && DIGEST.test(a.log))) return false;
  if (a.gpus !== undefined && !(Array.isArray(a.gpus) && a.gpus.every(isString))) return false;
  if (a.left !== undefined && !(Array.isArray(a.left) && a.left.every((e: unknown) => Array.isArray(e) && e.length === 2 && isString(e[0]) && isString(e[1])))) return false;
  return a.fingerprint === undefined || isObject(a.fingerprint);
}
