import { rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { readTextIfAny, writeFileAtomic } from '../util/fsx.js';
import { isAttemptShape, isRecordShape, RECORD_FORMAT, type NodeAttempt, type NodeRecord } from './record-shape.js';
import { keyOf } from '../util/hash.js';
import { processAlive, processStart } from '../util/process.js';
import { manifestDigest } from '../keys/tree.js';
import type { CacheStore } from './store.js';
import type { Digest, ExecKey } from '../util/key-types.js';

/*
 * What the cache knows of each result: a record per executed key (records/), written last, after
 * its objects, and the last attempt of each node of a workspace (nodes/), which only explains.
 */

export { RECORD_FORMAT };
export type { NodeAttempt, NodeRecord, OutputEntry, OutputFile, OutputLink } from './record-shape.js';

/**
 * The record of a key, if present, whole and well-formed. A record is written last, by rename;
 * one that was edited or damaged (a path leading out, a digest that is not one, a checksum or a
 * directory's manifest digest that does not match) is never served: the node runs again.
 */
export function readRecord(store: CacheStore, execKey: ExecKey): NodeRecord | undefined {
  const text = readTextIfAny(store.recordPath(execKey));
  return text === undefined ? undefined : parseRecord(text, execKey);
}

/** A record's text as writeRecord wrote it, if whole and well-formed for this key (wherever it was read from). */
export function parseRecord(text: string, execKey: ExecKey): NodeRecord | undefined {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    return undefined;
  }
  return isRecordShape(r, execKey) && r.check === recordCheck(r) && manifestsMatch(r) ? r : undefined;
}

function recordCheck(record: NodeRecord): string {
  // The record without its check (canonical JSON leaves an undefined field out). A spread, not a
  // rest pattern: once a process has made many objects with keys of their own (a 20,000-node
  // pipeline's), V8 copies a rest key by key, 6 µs a record.
  return keyOf({ ...record, check: undefined });
}

/** Each directory output's digest is the digest of the files, links and empty directories it lists. */
function manifestsMatch(record: NodeRecord): boolean {
  return Object.values(record.outputs).every((o) => o.kind === 'file' || manifestDigest(o.files!, o.links ?? [], o.dirs ?? []) === o.digest);
}

/** Written whole by rename, with its checksum; the caller makes it durable (group commit) and its objects before it. */
export function writeRecord(store: CacheStore, record: NodeRecord): void {
  writeFileAtomic(store.recordPath(record.execKey), recordText(record), { durable: false });
}

/** A record's text, with its checksum: what the local store keeps and a remote one too. */
export function recordText(record: NodeRecord): string {
  return JSON.stringify({ ...record, check: recordCheck(record) });
}

export function readAttempt(store: CacheStore, workspace: string, nodeId: string): NodeAttempt | undefined {
  const text = readTextIfAny(store.attemptPath(workspace, nodeId));
  if (text === undefined) return undefined;
  try {
    const a: unknown = JSON.parse(text);
    return isAttemptShape(a, nodeId) ? a : undefined;
  } catch {
    return undefined;
  }
}

/** Advisory (for why and show): a full disk here costs an explanation, never a result. */
export function writeAttempt(store: CacheStore, workspace: string, attempt: NodeAttempt): void {
  try {
    writeFileAtomic(store.attemptPath(workspace, attempt.nodeId), JSON.stringify(attempt), { durable: false });
  } catch {
    // the record, written before, is what counts
  }
}

/** A node running now: who runs it, since when, in which job slot and on which GPUs, and its live log. */
export interface RunningNode {
  nodeId: string;
  pid: number;
  /** The run's process start time (Linux), so a reused pid is not taken for it. */
  start?: string;
  host: string;
  since: string;
  slot: number;
  gpus?: string[];
  /** The log the stage writes as it runs (in the run's staging directory). */
  log: string;
}

/** Advisory, as attempts are: a running node not told is only a less helpful `show`. */
export function markRunning(store: CacheStore, workspace: string, r: RunningNode): void {
  try {
    writeFileAtomic(store.runningPath(workspace, r.nodeId), JSON.stringify(r), { durable: false });
  } catch {
    // nothing depends on it
  }
}

export function clearRunning(store: CacheStore, workspace: string, nodeId: string): void {
  rmSync(store.runningPath(workspace, nodeId), { force: true });
}

/** The node's running marker, if its run is alive (on this host: its pid exists; elsewhere: taken as said). */
export function readRunning(store: CacheStore, workspace: string, nodeId: string): RunningNode | undefined {
  const text = readTextIfAny(store.runningPath(workspace, nodeId));
  if (text === undefined) return undefined;
  let r: RunningNode;
  try {
    r = JSON.parse(text) as RunningNode;
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null || r.nodeId !== nodeId || typeof r.pid !== 'number' || typeof r.log !== 'string' || typeof r.since !== 'string') return undefined;
  // Its run died, or its pid was reused since.
  if (r.host === localHost() && (!processAlive(r.pid) || (r.start !== undefined && processStart(r.pid) !== r.start))) return undefined;
  return r;
}

export function localHost(): string {
  return hostname();
}

/** Every object a record names. */
export function objectsOf(record: NodeRecord): Digest[] {
  const out: Digest[] = [];
  for (const o of Object.values(record.outputs)) {
    if (o.kind === 'file') out.push(o.digest);
    else for (const f of o.files!) out.push(f.digest);
  }
  if (record.log) out.push(record.log);
  return out;
}
