import { join, resolve } from 'node:path';
import { type NodeRecord, readAttempt, readRecord } from '../cache/records.js';
import { diffFingerprints, fingerprint, keyOfFingerprint, type Fingerprint, type FingerprintChange } from '../keys/fingerprint.js';
import type { NodeDef } from '../pipeline/types.js';
import type { Project } from '../project.js';
import { keyOf } from '../util/hash.js';
import { checkRecord } from '../cache/restore.js';
import { checkInputs } from './preflight.js';

/** What is known of an upstream node when keying its consumers. */
export interface UpstreamInfo {
  planKey: string;
  /** Digests of its outputs, once they exist (cached or just produced). */
  outputs?: Record<string, string>;
  /** The record those outputs come from. */
  execKey?: string;
}

export interface NodeKeys {
  planKey: string;
  /** Known when every upstream's outputs are known. */
  execKey?: string;
  execFingerprint?: Fingerprint;
}

export function outputDigests(record: NodeRecord): Record<string, string> {
  return Object.fromEntries(Object.entries(record.outputs).map(([k, o]) => [k, o.digest]));
}

/** Digests of the node's source deps (not those another node produces). */
export function sourceDepDigests(project: Project, node: NodeDef): Record<string, string> {
  const produced = project.graph.producedDeps.get(node.id)!;
  const deps: Record<string, string> = {};
  for (const d of node.deps) {
    if (produced.has(d)) continue;
    const digest = project.digests.digest(join(project.workspace, d), `dependency "${d}"`);
    if (digest === undefined) throw new Error(`dependency "${d}" of "${node.id}" is missing`);
    deps[d] = digest;
  }
  for (const p of node.inputs) {
    const digest = project.digests.digestInput(resolve(project.workspace, p), `input "${p}"`);
    if (digest === undefined) throw new Error(`input "${p}" of "${node.id}" is missing`);
    deps[`input:${p}`] = digest;
  }
  return deps;
}

export function computeKeys(project: Project, node: NodeDef, upstream: Map<string, UpstreamInfo>, runtime?: Record<string, string>): NodeKeys {
  const deps = sourceDepDigests(project, node);
  const ups = project.graph.upstream.get(node.id)!;
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
  const planKey = keyOfFingerprint(fingerprint(node, deps, planUp, runtime));
  if (!execKnown) return { planKey };
  const execFingerprint = fingerprint(node, deps, execUp, runtime);
  return { planKey, execKey: keyOfFingerprint(execFingerprint), execFingerprint };
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

export function lookupResult(project: Project, node: NodeDef, execKey: string): Lookup {
  const record = readRecord(project.store, execKey);
  if (!record) return { state: 'miss' };
  const check = checkRecord(project.store, project.digests, record, project.workspace, node.outs);
  return { state: !check.usable ? 'damaged' : check.restore ? 'restore' : 'hit', record };
}

export type NodeState = 'cached' | 'run' | 'blocked';

export interface Decision {
  id: string;
  state: NodeState;
  reason: string;
  planKey: string;
  execKey?: string;
  /** For cached nodes whose workspace copy is missing or different. */
  restore?: boolean;
  record?: NodeRecord;
  /** What changed since the node's last run (when known). */
  changes?: FingerprintChange[];
}

export interface PlanOptions {
  force?: ReadonlySet<string>;
}

/** Decide, before anything runs, what each node will do and why. */
export function planAll(project: Project, opts: PlanOptions = {}): Decision[] {
  checkInputs(project);
  const infos = new Map<string, UpstreamInfo>();
  const decisions: Decision[] = [];
  const byId = new Map<string, Decision>();
  for (const node of project.graph.order) {
    const keys = computeKeys(project, node, infos, project.runtime);
    const info: UpstreamInfo = { planKey: keys.planKey };
    let d: Decision;
    const ups = project.graph.upstream.get(node.id)!;
    const pendingUp = ups.filter((u) => byId.get(u)!.state !== 'cached');
    if (keys.execKey === undefined) {
      d = { id: node.id, state: 'run', planKey: keys.planKey, reason: `upstream ${listSome(pendingUp)} will run (cached again if its outputs come out identical)` };
    } else {
      const found = lookupResult(project, node, keys.execKey);
      const record = found.record;
      if (opts.force?.has(node.id)) {
        d = { id: node.id, state: 'run', planKey: keys.planKey, execKey: keys.execKey, reason: 'forced (--force)' };
      } else if (record && (found.state === 'hit' || found.state === 'restore')) {
        const restore = found.state === 'restore';
        d = { id: node.id, state: 'cached', planKey: keys.planKey, execKey: keys.execKey, record, restore, reason: restore ? 'cached; will restore its outputs into the workspace' : 'cached' };
        info.outputs = outputDigests(record);
      } else {
        const last = readAttempt(project.store, project.workspace, node.id);
        const changes = last?.fingerprint ? diffFingerprints(last.fingerprint, keys.execFingerprint!) : undefined;
        let reason: string;
        if (found.state === 'damaged') reason = 'cached result is damaged or incomplete (an output was modified in place or removed from the cache); will recompute';
        else if (!last) reason = 'never run';
        else if (changes && changes.length > 0) reason = describeChanges(changes);
        else if (last.status === 'failed') reason = 'last run failed';
        else reason = 'no cached result for this key';
        d = { id: node.id, state: 'run', planKey: keys.planKey, execKey: keys.execKey, reason, changes };
      }
    }
    infos.set(node.id, info);
    byId.set(node.id, d);
    decisions.push(d);
  }
  return decisions;
}

export function describeChanges(changes: FingerprintChange[]): string {
  const head = changes.slice(0, 3).map((c) => `${c.what} changed`);
  return head.join('; ') + (changes.length > 3 ? `; and ${changes.length - 3} more` : '');
}

/** A list that can be thousands long, said as its first few and a count. */
export function listSome(items: readonly string[], shown = 3): string {
  return items.length <= shown + 1 ? items.join(', ') : `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;
}
