import { resolve } from 'node:path';
import { type NodeRecord, objectsOf, readRecord } from './cache/records.js';
import { checkRecord } from './cache/restore.js';
import { execKeyOf, fingerprint, planKeyOf, type Fingerprint } from './keys/fingerprint.js';
import type { ExecKey, PlanKey } from './util/key-types.js';
import type { NodeDef } from './pipeline/types.js';
import type { Project } from './project.js';
import { keyOf } from './util/hash.js';

/*
 * A node's keys and whether the cache holds its result: what the planner decides with, and what
 * the scheduler asks again for a node downstream of one that ran. Below both (engine/ and
 * execute/), so that neither reaches up into the other.
 */

/**
 * The digest of each source dep (by absolute path) and declared input (`input:` and its absolute
 * path) as the preflight found them: a plan made right after keys them without a second look.
 */
export type SourceDigests = Map<string, string>;

/** What is known of an upstream node when keying its consumers. */
export interface UpstreamInfo {
  planKey: PlanKey;
  /** Digests of its outputs, once they exist (cached or just produced). */
  outputs?: Record<string, string>;
  /** The record those outputs come from. */
  execKey?: ExecKey;
}

export interface NodeKeys {
  planKey: PlanKey;
  /** Known when every upstream's outputs are known. */
  execKey?: ExecKey;
  execFingerprint?: Fingerprint;
}

export function outputDigests(record: NodeRecord): Record<string, string> {
  return Object.fromEntries(Object.entries(record.outputs).map(([k, o]) => [k, o.digest]));
}

/**
 * Digests of the node's source deps (not those another node produces), as found now, or as the
 * preflight of this plan found them (`known`).
 */
export function sourceDepDigests(project: Project, node: NodeDef, known?: SourceDigests): Record<string, string> {
  const produced = project.graph.producedDeps.get(node.id)!;
  const deps: Record<string, string> = {};
  for (const d of node.deps) {
    if (produced.has(d)) continue;
    const abs = resolve(project.workspace, d);
    const digest = known?.get(abs) ?? project.digests.digest(abs, `dependency "${d}"`);
    if (digest === undefined) throw new Error(`dependency "${d}" of "${node.id}" is missing`);
    deps[d] = digest;
  }
  return deps;
}

export function computeKeys(project: Project, node: NodeDef, upstream: Map<string, UpstreamInfo>, runtime?: Record<string, string>, known?: SourceDigests): NodeKeys {
  const deps = sourceDepDigests(project, node, known);
  const ups = inKeyOrder(project.graph.upstream.get(node.id)!);
  const consumes = project.graph.consumes.get(node.id)!;
  const planUp: Record<string, string> = {};
  const execUp: Record<string, string> = {};
  let execKnown = true;
  for (const u of ups) {
    const info = upstream.get(u)!;
    planUp[u] = info.planKey;
    // Only the outputs this node reads: early cutoff per output, not per upstream node.
    if (info.outputs) execUp[u] = keyOf(pick(info.outputs, consumes.get(u)!));
    else execKnown = false;
  }
  const planKey = planKeyOf(fingerprint(node, deps, planUp, runtime));
  if (!execKnown) return { planKey };
  const execFingerprint = fingerprint(node, deps, execUp, runtime);
  return { planKey, execKey: execKeyOf(execFingerprint), execFingerprint };
}

/**
 * A node's upstream ids sorted as canonical JSON sorts keys, once per node: its fingerprint's
 * upstream map is then built in that order, and written whole (util/canonical.ts), where sorting
 * the 10,000 keys of a node that reads 10,000 others took 2 ms at each of its keys and records.
 */
const sortedUps = new WeakMap<readonly string[], string[]>();
function inKeyOrder(ups: string[]): string[] {
  if (ups.length < 2) return ups;
  let sorted = sortedUps.get(ups);
  if (!sorted) sortedUps.set(ups, (sorted = [...ups].sort()));
  return sorted;
}

function pick(outputs: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(names.filter((n) => n in outputs).map((n) => [n, outputs[n]!]));
}

/**
 * Whether a node's result for a key is in the cache, and usable as it is: the one place that
 * decides "cached" (planning and the scheduler both ask it). A record whose objects are missing
 * or modified is 'damaged'; one whose outputs are not in the workspace is a 'restore'.
 */
export type Lookup = { state: 'miss'; record?: undefined } | { state: 'hit' | 'restore' | 'damaged'; record: NodeRecord };

export function lookupResult(project: Project, node: NodeDef, execKey: ExecKey): Lookup {
  const record = readRecord(project.store, execKey);
  if (!record || readDamaged(project, record)) return { state: 'miss' };
  const check = checkRecord(project.store, project.digests, record, project.workspace, node.outs);
  return { state: !check.usable ? 'damaged' : check.restore ? 'restore' : 'hit', record };
}

/**
 * Whether a result was made from an upstream object that was damaged before the result's stage
 * ended: it may hold the damaged bytes, though its key (which names the content the upstream
 * should have had) is unchanged. Only asked when some object was ever damaged.
 */
function readDamaged(project: Project, record: NodeRecord): boolean {
  const taints = project.store.taints();
  if (taints.size === 0 || !record.reads) return false;
  const started = Date.parse(record.startedAt);
  const ended = started + record.durationMs;
  const suspect = (d: string): boolean => {
    const t = taints.get(d);
    return t !== undefined && t.damagedAt <= ended && started < t.foundAt;
  };
  for (const k of record.reads) {
    const up = readRecord(project.store, k);
    // An upstream record gone since: what it held cannot be told, so neither can this.
    if (!up) return true;
    if (objectsOf(up).some(suspect)) return true;
  }
  return false;
}
