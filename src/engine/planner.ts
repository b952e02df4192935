import type { Project } from '../project.js';
import { planAll, type Decision } from './plan.js';
import { decisionsFromSnapshot, touchedFromSnapshot, type ServedInfo } from './snapshot-plan.js';
import { checkReadSnapshot, priorResults, type PriorResults, type ServedNodes, type Snapshot, type SnapshotCheck, type SnapshotPlace } from './snapshot.js';
import type { Served } from '../execute/runner.js';
import type { CacheStore } from '../cache/store.js';
import type { SourceDigests } from '../node-keys.js';
import { StoredServedSet } from '../history/served-set.js';

/*
 * The one planner: what each node will do and why, for every command that asks (status, run,
 * watch). It chooses how to find out, from the cheapest that can answer exactly as keying every
 * node would:
 * - a snapshot written for this very pipeline where only sources changed since: the nodes those
 *   sources reach are keyed again, the rest is the snapshot's (snapshot-plan.ts);
 * - a snapshot written before the pipeline was edited: what it still vouches for spares reading
 *   records (PriorResults);
 * - neither: every node keyed and looked up (plan.ts).
 * The Plan it returns is what a run carries out: its runner does not key a node again unless an
 * upstream turned out otherwise than planned.
 */

export interface Plan {
  /** One per node, in pipeline order. */
  decisions: Decision[];
  /** The snapshot it was planned from, when only sources changed since it was written. */
  snapshot?: SnapshotCheck;
  /** The snapshot written before the pipeline was edited, when the plan used what it vouches for. */
  prior?: PriorResults;
}

export interface PlannerOptions {
  force?: ReadonlySet<string>;
  /** The preflight's findings, when the caller made it: not made again. */
  sources?: SourceDigests;
  /** This pipeline variant's last snapshot, as read (common.ts's snapshotOf). */
  snapshot?: Snapshot;
  /**
   * What changed since that snapshot, when the caller checked it (snapshotOf): not checked again
   * (30,000 stats at 20,000 nodes). A change made since is seen where any change made during the
   * run is: the snapshot written after it checks every witness again.
   */
  check?: SnapshotCheck;
  /**
   * The plan is for a run, which records every node's metrics: a node may be found cached without
   * reading its record only where the snapshot's served set gives them.
   */
  forRun?: boolean;
}

export function plan(project: Project, opts: PlannerOptions = {}): Plan {
  const { snapshot: snap, check: checked, force, sources, forRun } = opts;
  // A snapshot vouches for the whole pipeline as it was: a part of it (targets) is planned in full.
  if (snap && !project.targets) {
    if (snap.expansionKey !== project.expansionKey) {
      const found = priorResults(project, snap);
      const prior = found && { ...found, served: servedNodes(project.store, snap) };
      if (prior && (prior.served || !forRun)) return { decisions: planAll(project, { force, sources, prior }), prior };
    } else if (!force?.size) {
      const check = checked?.snap === snap ? checked : checkReadSnapshot(project, snap);
      const served = check && servedNodes(project.store, snap);
      const decisions = check && (served || !forRun) ? decisionsFromSnapshot(check, project, served, { keysOfWaitingWhenAsked: forRun }) : undefined;
      if (decisions) return { decisions, snapshot: check };
    }
  }
  return { decisions: planAll(project, { force, sources }) };
}

/**
 * The plan of a run told from the snapshot, before the project is opened: only sources changed
 * since it was written, and a run needs only the nodes that reach them (engine/part-run.ts).
 */
export interface PartPlan {
  snapshot: SnapshotCheck;
  /** What the run may execute, by index in the snapshot: the nodes that will run and those whose sources changed. */
  reach: number[];
  /** Their decisions, in the same order. */
  decisions: Decision[];
  /** The nodes whose outputs those read, not among them (by index). */
  context: number[];
  /**
   * Every node outside `reach`, served as the snapshot had it: its keys, and the outputs' digests
   * and metrics of those the run may read (context, and nodes keyed again to the same key).
   */
  served: Map<string, Served>;
  /** The snapshot's served set: a run's own carries over the entries of every node outside `reach`. */
  base: StoredServedSet;
}

/** Undefined where the snapshot cannot tell (no served set, a source that must be looked at in full): the full plan then says. */
export function planPart(check: SnapshotCheck, loc: SnapshotPlace): PartPlan | undefined {
  const { snap } = check;
  const base = StoredServedSet.read(loc.store, snap.served);
  if (!base || base.length !== snap.ids.length) return undefined;
  // Only the entries of the nodes the run reads are parsed, each checked to be the snapshot's node.
  const servedOf = (i: number): ServedInfo => {
    const info = servedAt(base, snap, i);
    if (!info) throw new Error(`the served set ${snap.served} is not the snapshot's at node ${i}`);
    return info;
  };
  let touched: Map<number, Decision> | undefined;
  try {
    touched = touchedFromSnapshot(check, loc, servedOf, { keysOfWaitingWhenAsked: true });
  } catch {
    return undefined; // a source that cannot be read as it is, a served set not the snapshot's: the full plan says
  }
  if (!touched) return undefined;
  const inReach = new Uint8Array(snap.ids.length);
  for (const i of check.dirty) inReach[i] = 1;
  for (const [i, d] of touched) if (d.state !== 'cached') inReach[i] = 1;
  const reach: number[] = [];
  const inContext = new Uint8Array(snap.ids.length);
  const context: number[] = [];
  for (let i = 0; i < snap.ids.length; i++) {
    if (!inReach[i]) continue;
    reach.push(i);
    for (let k = snap.upstreamAt[i]!; k < snap.upstreamAt[i + 1]!; k++) {
      const u = snap.upstreamNodes[k]!;
      if (!inReach[u] && !inContext[u]) {
        inContext[u] = 1;
        context.push(u);
      }
    }
  }
  const served = new Map<string, Served>();
  try {
    for (let i = 0; i < snap.ids.length; i++) {
      if (inReach[i]) continue;
      const d = touched.get(i);
      if (d) served.set(d.id, { planKey: d.planKey, execKey: d.execKey!, metrics: d.metrics, outputs: d.outputs });
      else served.set(snap.ids[i]!, { planKey: snap.planKeys[i]!, execKey: snap.execKeys[i]!, ...(inContext[i] ? servedOf(i) : {}) });
    }
  } catch {
    return undefined;
  }
  return { decisions: reach.map((i) => touched.get(i)!), snapshot: check, reach, context, served, base };
}

/**
 * What served each node the snapshot vouches for, from its served set: the metrics a run that
 * serves it without reading its record reports and records, and the output digests it keys the
 * nodes that read them with. Undefined when it has none (or it went).
 */
function servedNodes(store: CacheStore, s: Snapshot): ServedNodes | undefined {
  const set = StoredServedSet.read(store, s.served);
  if (!set || set.length !== s.ids.length) return undefined;
  const out = new Map<string, ServedInfo>();
  for (let i = 0; i < set.length; i++) {
    const info = servedAt(set, s, i);
    if (!info) return undefined;
    out.set(s.ids[i]!, info);
  }
  return out;
}

/** What the snapshot's served set says of its node i; undefined where its entry i is not that node's. */
function servedAt(set: StoredServedSet, s: Snapshot, i: number): ServedInfo | undefined {
  const e = set.entry(i);
  return e && e[0] === s.ids[i] && e[2] === s.execKeys[i] ? { metrics: e[3] ?? undefined, outputs: e[4] ?? undefined } : undefined;
}
