import { resolve } from 'node:path';
import { type NodeRecord, objectsOf, readAttempt, readRecord } from '../cache/records.js';
import { diffFingerprints, fingerprint, keyOfFingerprint, type Fingerprint, type FingerprintChange } from '../keys/fingerprint.js';
import type { NodeDef } from '../pipeline/types.js';
import type { Project } from '../project.js';
import { keyOf } from '../util/hash.js';
import { checkRecord } from '../cache/restore.js';
import { checkInputs, type SourceDigests } from './preflight.js';
import { UserError, type Diagnostic } from '../diagnostics.js';
import { outputDiagnostics, type RealMemo } from '../workspace-bounds.js';
import { readsSignature, type PriorResults } from './snapshot.js';
import { pushAll } from '../util/arrays.js';

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
  /** Found cached from the prior snapshot's witnesses, its record not read (see PriorResults). */
  prior?: boolean;
}

export interface PlanOptions {
  force?: ReadonlySet<string>;
  /** A snapshot written before the pipeline was edited, and what it still vouches for. */
  prior?: PriorResults;
}

/** Decide, before anything runs, what each node will do and why. */
export function planAll(project: Project, opts: PlanOptions = {}): Decision[] {
  // A node decided from the prior snapshot has its outputs where they were when it was written,
  // every directory on their way unchanged: they passed the output checks then, with the same
  // allow_outside and read_only. Only the other nodes' outputs are checked, each before it is looked at.
  const prior = opts.prior && JSON.stringify(opts.prior.snap.outside) === JSON.stringify(project.outside) ? opts.prior : undefined;
  const sources = checkInputs(project, { outputs: prior === undefined });
  if (prior) {
    try {
      return planNodes(project, { ...opts, prior }, sources, new Map());
    } catch (err) {
      if (!(err instanceof PriorStale)) throw err;
      // A record the prior snapshot vouched for went (a gc meanwhile): planned without it.
      const problems = outputDiagnostics(project);
      if (problems.length > 0) throw new UserError(problems);
    }
  }
  return planNodes(project, { ...opts, prior: undefined }, sources);
}

class PriorStale extends Error {}

/** `outputsMemo`: the outputs of nodes not decided from the prior are checked here (see planAll). */
function planNodes(project: Project, opts: PlanOptions, sources: SourceDigests, outputsMemo?: RealMemo): Decision[] {
  const outputProblems: Diagnostic[] = [];
  const infos = new Map<string, UpstreamInfo>();
  const decisions: Decision[] = [];
  const byId = new Map<string, Decision>();
  const { prior } = opts;
  /** Nodes decided from the prior snapshot: their records are read only if a node that was not needs their outputs. */
  const fromPrior = new Set<string>();
  for (const node of project.graph.order) {
    const ups = project.graph.upstream.get(node.id)!;
    const p = prior?.clean.get(node.id);
    const priorCandidate = p !== undefined && !opts.force?.has(node.id) && ups.every((u) => fromPrior.has(u)) && prior!.snap.reads[p] === readsSignature(project.graph, node.id);
    let keys = computeKeys(project, node, infos, project.runtime, sources);
    if (priorCandidate && keys.planKey === prior!.snap.planKeys[p]) {
      const execKey = prior!.snap.execKeys[p]!;
      fromPrior.add(node.id);
      infos.set(node.id, { planKey: keys.planKey, execKey });
      const d: Decision = { id: node.id, state: 'cached', planKey: keys.planKey, execKey, reason: 'cached', prior: true };
      byId.set(node.id, d);
      decisions.push(d);
      continue;
    }
    if (outputsMemo) {
      const problems = outputDiagnostics(project, [node], outputsMemo);
      if (problems.length > 0) {
        pushAll(outputProblems, problems);
        const d: Decision = { id: node.id, state: 'blocked', planKey: keys.planKey, reason: problems[0]!.message };
        infos.set(node.id, { planKey: keys.planKey });
        byId.set(node.id, d);
        decisions.push(d);
        continue;
      }
    }
    // Not decided from the prior snapshot: the outputs of upstream nodes that were are needed,
    // unless an upstream node will run (the key then waits for its outputs anyway).
    const unread = ups.every((u) => byId.get(u)!.state === 'cached') ? ups.filter((u) => fromPrior.has(u) && !infos.get(u)!.outputs) : [];
    if (unread.length > 0) {
      for (const u of unread) fillOutputs(project, infos.get(u)!);
      keys = computeKeys(project, node, infos, project.runtime, sources);
    }
    const info: UpstreamInfo = { planKey: keys.planKey };
    let d: Decision;
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
  if (outputProblems.length > 0) throw new UserError(outputProblems);
  return decisions;
}

/** The outputs of a node decided from the prior snapshot, from its record, for a node that reads them. */
function fillOutputs(project: Project, info: UpstreamInfo): void {
  const record = readRecord(project.store, info.execKey!);
  if (!record) throw new PriorStale();
  info.outputs = outputDigests(record);
}

export function describeChanges(changes: FingerprintChange[]): string {
  const head = changes.slice(0, 3).map((c) => `${c.what} changed`);
  return head.join('; ') + (changes.length > 3 ? `; and ${changes.length - 3} more` : '');
}

/** A list that can be thousands long, said as its first few and a count. */
export function listSome(items: readonly string[], shown = 3): string {
  return items.length <= shown + 1 ? items.join(', ') : `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;
}
