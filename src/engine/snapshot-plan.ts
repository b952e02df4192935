import type { Stats } from 'node:fs';
import { resolve } from 'node:path';
import { type NodeRecord, readRecord } from '../cache/records.js';
import { FileDigests } from '../keys/file-digests.js';
import { execKeyOf, planKeyOf, type Fingerprint } from '../keys/fingerprint.js';
import type { Decision } from './plan.js';
import type { PlanKey } from '../util/key-types.js';
import { explainRun, listSome, withReasonWhenAsked } from './reasons.js';
import { settledSources, sourceStats, type ServedNodes, type Snapshot, type SnapshotCheck, type SnapshotPlace } from './snapshot.js';
import { Bounds } from '../workspace-bounds.js';

/*
 * Status when only sources changed since the snapshot: the plan of the whole pipeline, worked
 * out for the nodes those sources reach and read from the snapshot for all others. A node whose
 * sources changed is keyed again from its last record's fingerprint with the new digests (the
 * expansion is the snapshot's, so nothing else of its fingerprint can differ); what follows a
 * node that will run will run too. Anything this cannot decide exactly as the full plan would
 * (a changed source that is missing, a new key with a record already, a fingerprint that does
 * not give its key back) returns undefined, and the full plan runs.
 */
/**
 * The plan told from the snapshot without opening the project: every node as it had it when
 * nothing changed, else planFromSnapshot. Undefined when it cannot tell (the full plan then says).
 */
export function decisionsFromSnapshot(check: SnapshotCheck, loc: SnapshotPlace, served?: ServedNodes, opts: TouchedOptions = {}): Decision[] | undefined {
  const { snap } = check;
  if (check.dirty.length === 0) return snap.ids.map((id, i) => asSnapshotHad(snap, i, () => served?.get(id)));
  try {
    return planFromSnapshot(check, loc, served, opts);
  } catch {
    return undefined; // a source that cannot be read as it is: the full plan says why, located
  }
}

export function planFromSnapshot(check: SnapshotCheck, loc: SnapshotPlace, served?: ServedNodes, opts: TouchedOptions = {}): Decision[] | undefined {
  const { snap } = check;
  const servedOf = (i: number): ServedInfo | undefined => served?.get(snap.ids[i]!);
  const touched = touchedFromSnapshot(check, loc, servedOf, opts);
  return touched && snap.ids.map((_, i) => touched.get(i) ?? asSnapshotHad(snap, i, servedOf));
}

/** What a run's served set says of a node: its metrics, and its outputs' digests when it kept them. */
export type ServedInfo = { metrics?: Record<string, number>; outputs?: Record<string, string> };

/** Node i, cached as the snapshot had it. */
export function asSnapshotHad(snap: Snapshot, i: number, servedOf: (i: number) => ServedInfo | undefined): Decision {
  return { id: snap.ids[i]!, state: 'cached', reason: 'cached', planKey: snap.planKeys[i]!, execKey: snap.execKeys[i]!, prior: true, ...servedOf(i) };
}

/**
 * The decisions of the nodes the changed sources reach (by index: those keyed again, and what
 * follows them); every other node is as the snapshot had it (asSnapshotHad). `servedOf` is asked
 * only of nodes found cached among them. Undefined where it cannot tell (see above).
 */
export interface TouchedOptions {
  /** Gathers the source witnesses of nodes found touched, not changed (see settledSources). */
  settled?: Map<number, Stats>;
  /**
   * For a run, which keys a node that waits on an upstream itself: such a node's record is read
   * only if its plan key is asked (and one gone since the snapshot is then an error, not the full plan).
   */
  keysOfWaitingWhenAsked?: boolean;
}

export function touchedFromSnapshot(check: SnapshotCheck, loc: SnapshotPlace, servedOf: (i: number) => ServedInfo | undefined, opts: TouchedOptions = {}): Map<number, Decision> | undefined {
  const { settled } = opts;
  const { snap, dirty } = check;
  const { store, workspace } = loc;
  const digests = new FileDigests(undefined, new Bounds(workspace, snap.outside));
  const n = snap.ids.length;
  const isDirty = new Uint8Array(n);
  for (const i of dirty) isDirty[i] = 1;
  const upstreamOf = (i: number): number[] => Array.from(snap.upstreamNodes.subarray(snap.upstreamAt[i], snap.upstreamAt[i + 1]));
  const planKeys: (PlanKey | undefined)[] = [...snap.planKeys];
  /**
   * A node that will run after an upstream: its plan key is worked out when asked (status --json,
   * run -n), not by a run, which keys it itself once its upstreams are done. The key of a node that
   * reads 10,000 nodes (the engine bench's aggregate) cost 15 ms of every status and run after a
   * source change.
   */
  const later = new Map<number, () => PlanKey>();
  const keyOf = (i: number): PlanKey => (planKeys[i] ??= later.get(i)!());
  const decisions = new Map<number, Decision>();
  const fingerprintOf = (i: number): Fingerprint | undefined => {
    const r: NodeRecord | undefined = readRecord(store, snap.execKeys[i]!);
    return r && execKeyOf(r.fingerprint) === snap.execKeys[i] ? r.fingerprint : undefined;
  };
  /** Nodes that will run or were keyed again: what follows them must be looked at. */
  const touched = new Uint8Array(n);
  // Nodes before the first changed one (in the graph's order) are clean: all they read comes before them.
  let first = n;
  for (const i of dirty) first = Math.min(first, i);
  for (let i = first; i < n; i++) {
    const id = snap.ids[i]!;
    let upTouched = false;
    for (let k = snap.upstreamAt[i]!; k < snap.upstreamAt[i + 1]! && !upTouched; k++) upTouched = touched[snap.upstreamNodes[k]!] === 1;
    // Most nodes: clean, and so is everything above them (no list is built for those).
    if (!isDirty[i] && !upTouched) continue;
    touched[i] = 1;
    const ups = upstreamOf(i);
    const pending = ups.filter((u) => decisions.has(u) && decisions.get(u)!.state !== 'cached');
    // The plan key: the same fingerprint with the upstream nodes' plan keys.
    const planKeyFrom = (exec: Fingerprint): PlanKey => planKeyOf({ ...exec, upstream: Object.fromEntries(ups.map((u) => [snap.ids[u]!, keyOf(u)])) });
    if (pending.length > 0 && !isDirty[i] && opts.keysOfWaitingWhenAsked) {
      // Its record (the engine bench's aggregate's: 0.9 MB, a fingerprint over 10,000 upstream
      // keys) is read only for its plan key, which a run does not ask: it keys the node itself.
      waits(i, pending, () => {
        const before = fingerprintOf(i);
        if (!before) throw new Error(`the record of ${id} the snapshot names (${snap.execKeys[i]}) is gone or damaged since`);
        return planKeyFrom(before);
      });
      continue;
    }
    const before = fingerprintOf(i);
    if (!before) return undefined;
    let exec = before;
    const sourcesBefore = settled && isDirty[i] ? sourceStats(snap, workspace, i) : undefined;
    if (isDirty[i]) {
      const deps: Record<string, string> = {};
      for (const name of Object.keys(before.deps)) {
        const digest = digests.digest(resolve(workspace, name));
        if (digest === undefined) return undefined;
        deps[name] = digest;
      }
      exec = { ...before, deps };
    }
    const planKey = (): PlanKey => planKeyFrom(exec);
    if (pending.length > 0) {
      waits(i, pending, planKey);
      continue;
    }
    planKeys[i] = planKey();
    const execKey = execKeyOf(exec);
    if (execKey === snap.execKeys[i]) {
      // Touched, not changed: the same content, the same key.
      decisions.set(i, { id, state: 'cached', reason: 'cached', planKey: planKeys[i]!, execKey, prior: true, ...servedOf(i) });
      const proven = sourcesBefore && settledSources(snap, workspace, sourcesBefore);
      if (proven) for (const [w, st] of proven) settled!.set(w, st);
      continue;
    }
    if (readRecord(store, execKey)) return undefined;
    decisions.set(i, withReasonWhenAsked({ id, state: 'run' as const, planKey: planKeys[i]!, execKey, execFingerprint: exec }, () => explainRun(store, workspace, id, exec, false)));
  }
  return decisions;

  /** Node i will run after an upstream that will: its plan key worked out by `planKey` when asked. */
  function waits(i: number, pending: number[], planKey: () => PlanKey): void {
    planKeys[i] = undefined;
    later.set(i, planKey);
    const d = { id: snap.ids[i]!, state: 'run', reason: `upstream ${listSome(pending.map((u) => snap.ids[u]!))} will run (cached again if its outputs come out identical)` } as Decision;
    decisions.set(i, Object.defineProperty(d, 'planKey', { get: () => keyOf(i), enumerable: true, configurable: true }));
  }
}
