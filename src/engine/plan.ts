import { type NodeRecord, readRecord } from '../cache/records.js';
import type { Fingerprint, FingerprintChange } from '../keys/fingerprint.js';
import type { ExecKey, PlanKey } from '../util/key-types.js';
import type { Project } from '../project.js';
import { checkInputs } from './preflight.js';
import { computeKeys, lookupResult, outputDigests, type SourceDigests, type UpstreamInfo } from '../node-keys.js';
import { UserError, type Diagnostic } from '../diagnostics.js';
import { outputDiagnostics, type RealMemo } from '../workspace-bounds.js';
import { readsSignature, type PriorResults } from './snapshot.js';
import { pushAll } from '../util/arrays.js';
import { explainRun, listSome, withReasonWhenAsked } from './reasons.js';

export type NodeState = 'cached' | 'run' | 'blocked';

export interface Decision {
  id: string;
  state: NodeState;
  reason: string;
  planKey: PlanKey;
  execKey?: ExecKey;
  /** For cached nodes whose workspace copy is missing or different. */
  restore?: boolean;
  record?: NodeRecord;
  /** What changed since the node's last run (when known). */
  changes?: FingerprintChange[];
  /** Found cached from the prior snapshot's witnesses, its record not read (see PriorResults). */
  prior?: boolean;
  /** What a node that will run is keyed by, when its execution key is known: a run uses it as it is. */
  execFingerprint?: Fingerprint;
  /** A node found cached without reading its record: its metrics, from the snapshot's served set. */
  metrics?: Record<string, number>;
  /** Such a node's outputs' digests, from the served set when it has them. */
  outputs?: Record<string, string>;
}

export interface PlanOptions {
  force?: ReadonlySet<string>;
  /** A snapshot written before the pipeline was edited, and what it still vouches for. */
  prior?: PriorResults;
  /** The preflight's findings, when the caller made it (a run, before its cache lease): not made again. */
  sources?: SourceDigests;
}

/** Decide, before anything runs, what each node will do and why. */
export function planAll(project: Project, opts: PlanOptions = {}): Decision[] {
  // A node decided from the prior snapshot has its outputs where they were when it was written,
  // every directory on their way unchanged: they passed the output checks then, with the same
  // allow_outside and read_only. Only the other nodes' outputs are checked, each before it is looked at.
  const prior = opts.prior && JSON.stringify(opts.prior.snap.outside) === JSON.stringify(project.outside) ? opts.prior : undefined;
  const sources = opts.sources ?? checkInputs(project, { outputs: prior === undefined });
  if (prior) {
    try {
      return planNodes(project, { ...opts, prior }, sources, opts.sources ? undefined : new Map());
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
      // The served set's output digests stand for the record's (the run that wrote it served this
      // very record, and the snapshot saw no record shard change): a node reading them is keyed without it.
      const served = prior!.served?.get(node.id);
      infos.set(node.id, { planKey: keys.planKey, execKey, outputs: served?.outputs });
      const d: Decision = { id: node.id, state: 'cached', planKey: keys.planKey, execKey, reason: 'cached', prior: true, ...served };
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
        d = { id: node.id, state: 'run', planKey: keys.planKey, execKey: keys.execKey, execFingerprint: keys.execFingerprint, reason: 'forced (--force)' };
      } else if (record && (found.state === 'hit' || found.state === 'restore')) {
        const restore = found.state === 'restore';
        d = { id: node.id, state: 'cached', planKey: keys.planKey, execKey: keys.execKey, record, restore, reason: restore ? 'cached; will restore its outputs into the workspace' : 'cached' };
        info.outputs = outputDigests(record);
      } else {
        const exec = keys.execFingerprint!;
        const damaged = found.state === 'damaged';
        d = withReasonWhenAsked({ id: node.id, state: 'run' as const, planKey: keys.planKey, execKey: keys.execKey, execFingerprint: exec }, () => explainRun(project.store, project.workspace, node.id, exec, damaged));
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
