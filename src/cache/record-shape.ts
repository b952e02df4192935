import { posix } from 'node:path';
import type { NodeAttempt, NodeRecord } from './records.js';

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

function isOutputEntry(o: unknown): boolean {
  if (!isObject(o) || !isCleanRelative(o.path) || !isString(o.digest) || !DIGEST.test(o.digest) || !isCount(o.size)) return false;
  if (o.kind === 'file') return o.files === undefined && o.links === undefined && o.dirs === undefined;
  if (o.kind !== 'dir' || !Array.isArray(o.files)) return false;
  const filesOk = o.files.every((f: unknown) => isObject(f) && isCleanRelative(f.path) && isString(f.digest) && DIGEST.test(f.digest) && isCount(f.size) && typeof f.exec === 'boolean');
  const linksOk = o.links === undefined || (Array.isArray(o.links) && o.links.every((l: unknown) => isObject(l) && isCleanRelative(l.path) && isString(l.target) && l.target !== '' && !l.target.includes('\0')));
  const dirsOk = o.dirs === undefined || (Array.isArray(o.dirs) && o.dirs.every(isCleanRelative));
  return filesOk && linksOk && dirsOk;
}

export function isRecordShape(r: unknown, execKey: string): r is NodeRecord {
  if (!isObject(r) || r.format !== 2 || r.execKey !== execKey || !isString(r.nodeId) || !isString(r.planKey) || !isObject(r.fingerprint)) return false;
  if (!isObject(r.outputs) || !Object.values(r.outputs).every(isOutputEntry)) return false;
  if (r.log !== undefined && !(isString(r.log) && DIGEST.test(r.log))) return false;
  if (r.metrics !== undefined && !(isObject(r.metrics) && Object.values(r.metrics).every((v) => typeof v === 'number'))) return false;
  if (r.peakRssBytes !== undefined && !isCount(r.peakRssBytes)) return false;
  return isString(r.startedAt) && isCount(r.durationMs) && isString(r.host);
}

export function isAttemptShape(a: unknown, nodeId: string): a is NodeAttempt {
  if (!isObject(a) || a.nodeId !== nodeId || (a.status !== 'succeeded' && a.status !== 'failed')) return false;
  if (!isString(a.execKey) || !isString(a.planKey) || !isString(a.at) || !isString(a.host)) return false;
  if (a.log !== undefined && !(isString(a.log) && DIGEST.test(a.log))) return false;
  return a.fingerprint === undefined || isObject(a.fingerprint);
}
