import { lstatSync, readdirSync, readFileSync, rmSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { outputState } from '../cache/restore.js';
import { readRecord, type NodeRecord } from '../cache/records.js';
import type { ExecKey, PlanKey } from '../util/key-types.js';
import type { Served } from '../execute/runner.js';
import type { NodeDef } from '../pipeline/types.js';
import type { Project, ProjectLocation } from '../project.js';
import { writeFileAtomic } from '../util/fsx.js';
import { decodeSections, encodeSections, type SectionFormat } from '../util/section-file.js';
import { createHash } from 'node:crypto';
import type { Graph } from '../graph.js';
import { pushAll } from '../util/arrays.js';
import { isOutsideDirs, type OutsideDirs } from '../workspace-bounds.js';

/*
 * The no-op snapshot: what lets `status` and `run` answer "everything is cached and in place"
 * from one file and the stats of the files it depends on, without expanding the pipeline,
 * computing a key or reading a record.
 *
 * It is written only after every node was found served by its record with every output in
 * place, and it lists witnesses: the stat (device, inode, size, mtime, ctime) of every file and
 * directory that could change that answer:
 * - each source dependency and declared input, every entry inside a directory one; their digests
 *   were checked against the keys' when it was written;
 * - each output, every entry inside a directory one. Outputs are hardlinks to sealed objects,
 *   so a write, a chmod, a removal of the object (its link count) all move ctime or mtime;
 * - the directories above them up to the workspace: a directory on the way replaced by a
 *   symlink (which would lead outside) changes its parent's mtime (one that changed is looked
 *   into, see wayChangesHold);
 * - the record shards, so a removed record is seen.
 * The pipeline's bytes, options, dfwe's and the stage types' versions are in its key, the ML
 * runtime in its body. Any other difference, and the full plan runs, which then writes a new one.
 * A source changed within RACY_MS of being witnessed could hide an edit in the same timestamp
 * tick: it is witnessed as changed already (the next check hashes it again). A directory on the
 * way or an output changed within DIR_RACY_MS is waited for.
 */

const SNAPSHOT_FORMAT = 11;
/** The snapshot's file: its per-node and per-witness columns as sections (util/section-file.ts). */
const SNAPSHOT_FILE: SectionFormat = {
  magic: 'dfwesnap',
  columns: {
    ids: 'json', planKeys: 'json', execKeys: 'json', reads: 'json', paths: 'json',
    stageOf: 'u32', structural: 'u32', ways: 'u32', sourcesAt: 'u32', sourceWitnesses: 'u32', upstreamAt: 'u32', upstreamNodes: 'u32',
    stats: 'f64',
  },
};
/** As FileDigests: a source file's stat proves its content once it is this old. */
const RACY_MS = 2000;
/**
 * Directories on the way and output directories need only outlast the clock's tick (1-10 ms on
 * Linux filesystems): what their stat guards is a change made after it was taken, which then
 * gets a later mtime. (Directories inside a source carry content and get RACY_MS.)
 */
const DIR_RACY_MS = 20;

/** What status prints about the pipeline as a whole. */
export interface PipelineHeader {
  name: string;
  displayPath: string;
  members: number;
  instances: number;
  nodes: number;
}

export interface Snapshot {
  format: typeof SNAPSHOT_FORMAT;
  /** The expansion it was written for: the pipeline's bytes, options and versions. */
  expansionKey: string;
  /** What that pipeline says, whatever its comments and layout: a file edited only there is the same pipeline (keepSnapshot). */
  meaningKey: string;
  runtime: Record<string, string>;
  /** The pipeline's runtime.backend, which the runtime is chosen from. */
  backend?: string;
  /** The pipeline has a report section (a run then ends with the metrics table). */
  report: boolean;
  /** The pipeline's executor setting. */
  executor?: string;
  /** The pipeline's remote (status says what it holds). */
  remote?: string;
  /** The most of each resource token one node needs: a run with less plans in full (and says so). */
  resources: Record<string, number>;
  header: PipelineHeader;
  stages: string[];
  /** Per node, in pipeline order (columns: one array each, stored as sections of the file; see snapshot-file.ts). */
  ids: string[];
  stageOf: Uint32Array;
  planKeys: PlanKey[];
  execKeys: ExecKey[];
  /** Which outputs of which upstream nodes each node reads (see readsSignature). */
  reads: string[];
  /** The witnessed paths (relative to the workspace where inside it) and, five numbers each, their stats. */
  paths: string[];
  stats: Float64Array;
  /** Witnesses a change of which needs the full plan: outputs, directories on the way, record shards. */
  structural: Uint32Array;
  /** Of those, the directories on the way and record shards (a run that adds its results changes them). */
  ways: Uint32Array;
  /** Per node, the witnesses of its sources (sourceWitnesses[sourcesAt[i] .. sourcesAt[i+1]]). */
  sourcesAt: Uint32Array;
  sourceWitnesses: Uint32Array;
  /** Per node, its upstream nodes by index, in the graph's order. */
  upstreamAt: Uint32Array;
  upstreamNodes: Uint32Array;
  outside: OutsideDirs;
  /** The pipeline's params (with `--param` values), for the run history of a no-op. */
  params: Record<string, unknown>;
  /** The run history's served set of these results (runs/served/), when a run wrote it. */
  served?: string;
}

/** One file per pipeline variant, replaced by each write: snapshots do not pile up with edits. */
function snapshotPath(loc: { store: { stateDir: string }; variantKey: string }): string {
  return join(loc.store.stateDir, 'snapshots', `${loc.variantKey}.snap`);
}

/** Where a snapshot is checked: a project, or its location before it is opened. */
export type SnapshotPlace = Pick<ProjectLocation, 'workspace' | 'store' | 'expansionKey'>;

/** A snapshot and the nodes whose sources changed since it was written (by index, in pipeline order). */
export interface SnapshotCheck {
  snap: Snapshot;
  dirty: number[];
  /** Directories on the way changed and still hold: `snap` has their stats as they are now (keep it, and the next check does not look again). */
  restated: boolean;
}

/**
 * This pipeline variant's last snapshot, for whatever expansion it was written, if it is whole
 * and written for this ML runtime; undefined otherwise.
 */
export function readSnapshot(loc: ProjectLocation, runtimeOf: (backend: string | undefined) => Record<string, string>): Snapshot | undefined {
  let s: Snapshot;
  try {
    s = decodeSections(SNAPSHOT_FILE, readFileSync(snapshotPath(loc))) as unknown as Snapshot;
  } catch {
    return undefined;
  }
  const u32 = (a: unknown): boolean => a instanceof Uint32Array;
  // A snapshot only saves time: one of another shape is ignored.
  if (
    s?.format !== SNAPSHOT_FORMAT || typeof s.expansionKey !== 'string' || typeof s.meaningKey !== 'string' || typeof s.resources !== 'object' || typeof s.header !== 'object' || !Array.isArray(s.stages) ||
    !Array.isArray(s.ids) || !u32(s.stageOf) || !Array.isArray(s.planKeys) || !Array.isArray(s.execKeys) || !Array.isArray(s.reads) ||
    !Array.isArray(s.paths) || !(s.stats instanceof Float64Array) || !u32(s.structural) || !u32(s.ways) || typeof s.params !== 'object' || s.params === null || !isOutsideDirs(s.outside) || (s.served !== undefined && typeof s.served !== 'string') || (s.remote !== undefined && typeof s.remote !== 'string') ||
    !u32(s.sourcesAt) || !u32(s.sourceWitnesses) || !u32(s.upstreamAt) || !u32(s.upstreamNodes) ||
    s.stageOf.length !== s.ids.length || s.planKeys.length !== s.ids.length || s.execKeys.length !== s.ids.length ||
    s.sourcesAt.length !== s.ids.length + 1 || s.upstreamAt.length !== s.ids.length + 1 || s.reads.length !== s.ids.length ||
    s.stats.length !== 5 * s.paths.length
  ) return undefined;
  let runtime: Record<string, string>;
  try {
    runtime = runtimeOf(s.backend);
  } catch {
    return undefined;
  }
  return JSON.stringify(runtime) === JSON.stringify(s.runtime) ? s : undefined;
}

/** The workspace-relative form of a path ('.' for the workspace itself; absolute outside it): a witness's path as stored. */
function pathOf(workspace: string, abs: string): string {
  const rel = relative(workspace, abs);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? abs : rel;
}

/** A witness's path as stored (see pathOf), absolute again. */
function witnessPath(p: string, workspace: string): string {
  return p[0] === '/' ? p : p === '.' ? workspace : `${workspace}/${p}`;
}

/**
 * Where a witness is stat'ed: as witnessPath, but from the process's directory when that is the
 * workspace (as for a command run there), where the kernel walks two or three directories fewer
 * per stat: a tenth of the 30,000 of a 20,000-node check.
 */
function statPath(p: string, workspace: string, here = isCwd(workspace)): string {
  return here && p[0] !== '/' && p !== '.' ? p : witnessPath(p, workspace);
}

function isCwd(dir: string): boolean {
  try {
    return process.cwd() === dir;
  } catch {
    return false; // the process's directory is gone
  }
}

/** The five numbers a witness keeps of a stat. */
function statColumns(st: Stats): number[] {
  return [st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs];
}

/** A stat (undefined: the path is gone) is the one kept at stats[j .. j+5]. */
function sameStat(st: Stats | undefined, stats: ArrayLike<number>, j: number): boolean {
  return st !== undefined && st.dev === stats[j] && st.ino === stats[j + 1] && st.size === stats[j + 2] && st.mtimeMs === stats[j + 3] && st.ctimeMs === stats[j + 4];
}

/** The witnesses whose stat differs from the snapshot's now (by index into its paths), with that stat. */
function changedWitnesses(s: Snapshot, workspace: string): Map<number, Stats | undefined> {
  const { paths, stats } = s;
  const changed = new Map<number, Stats | undefined>();
  const here = isCwd(workspace);
  for (let i = 0, j = 0; i < paths.length; i++, j += 5) {
    const p = paths[i]!;
    const st = lstatSync(statPath(p, workspace, here), { throwIfNoEntry: false });
    if (!sameStat(st, stats, j)) changed.set(i, st);
  }
  return changed;
}

/**
 * What the changed witnesses allow: undefined when one of them needs the full plan (an output, a
 * record shard, a directory on the way that is gone or is no longer one, or below which a
 * directory on the way is no longer one, a record shard where a record went or changed); else the snapshot with the new stats of the
 * directories on the way that changed and still hold (empty: none changed).
 *
 * A directory on the way guards what lies below it on the way: an entry replaced by a symlink
 * (which would lead outside) changes its mtime. So does any file made, renamed or removed there
 * (an editor's swap file, a save by rename, a stage's log in the workspace), which used to cost
 * the next command the full plan. Such a change is looked at instead: each entry of the
 * directory that lies on the way to a witnessed path must still be a directory (lstat, which
 * does not follow a symlink). Every directory on the way has its parent witnessed, so from the
 * workspace down every one is a real directory. A witnessed path right below it is its own
 * witness. A record shard that changed is looked into (recordsHold).
 */
function wayChangesHold(s: Snapshot, changed: ReadonlyMap<number, Stats | undefined>, loc: SnapshotPlace): Map<number, Stats> | undefined {
  const held = new Map<number, Stats>();
  const dirs = new Set<string>();
  /** Record shards that changed, with the mtime they were witnessed with. */
  const shards = new Map<string, number>();
  const ways = new Set(s.ways);
  const cache = loc.store.root;
  for (const i of s.structural) {
    if (!changed.has(i)) continue;
    const st = changed.get(i);
    if (!ways.has(i) || !st?.isDirectory()) return undefined;
    // Its new stat is kept only once older than a tick: a change made after it in the same tick
    // would not move it again. (Younger: looked into again next time.)
    if (Date.now() - st.mtimeMs >= DIR_RACY_MS) held.set(i, st);
    const abs = witnessPath(s.paths[i]!, loc.workspace);
    if (abs === cache || abs.startsWith(`${cache}/`)) shards.set(abs, s.stats[5 * i + 3]!);
    else dirs.add(s.paths[i]!);
  }
  if (shards.size > 0 && !recordsHold(s, shards, loc)) return undefined;
  return dirs.size === 0 || directoriesBelowHold(s.paths, dirs, loc.workspace) ? held : undefined;
}

/**
 * Up from each path (in a witness's form): every directory on its way whose parent is one of
 * `changed` must still be a directory (lstat, which does not follow a symlink).
 */
function directoriesBelowHold(paths: Iterable<string>, changed: ReadonlySet<string>, workspace: string): boolean {
  const looked = new Set<string>();
  for (const p of paths) {
    for (let child = p; ; ) {
      const cut = child.lastIndexOf('/');
      const parent = cut > 0 ? child.slice(0, cut) : cut === 0 ? '/' : '.';
      if (child !== p && changed.has(parent) && !looked.has(child)) {
        looked.add(child);
        if (!lstatSync(statPath(child, workspace), { throwIfNoEntry: false })?.isDirectory()) return false;
      }
      if (parent === child || parent === '.' || parent === '/') break;
      child = parent;
    }
  }
  return true;
}

/**
 * A record shard changes whenever a record is written there (by a run of another pipeline, or in
 * another workspace sharing the cache) or removed (gc). It still holds when each record of this
 * snapshot in it is there, unchanged since the shard was witnessed: a record is written by
 * rename, which gives it a ctime no earlier than its shard's mtime, and a shard is witnessed only
 * once its mtime is DIR_RACY_MS old, so a record written or touched since has a later ctime.
 */
function recordsHold(s: Snapshot, shards: ReadonlyMap<string, number>, loc: SnapshotPlace): boolean {
  const seen = new Set<string>();
  for (const k of s.execKeys) {
    const path = loc.store.recordPath(k);
    const witnessed = shards.get(dirname(path));
    if (witnessed === undefined) continue;
    seen.add(dirname(path));
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isFile() || st.ctimeMs > witnessed) return false;
  }
  // A directory in the cache that holds none of its records is not a shard it witnessed.
  return seen.size === shards.size;
}

/**
 * The stats of node i's source witnesses now, taken before its sources are hashed again (a node
 * whose sources changed since the snapshot was written: see settledSources).
 */
export function sourceStats(s: Snapshot, workspace: string, i: number): [number, Stats | undefined][] {
  return Array.from(s.sourceWitnesses.subarray(s.sourcesAt[i], s.sourcesAt[i + 1]), (w) => [w, lstatSync(statPath(s.paths[w]!, workspace), { throwIfNoEntry: false })]);
}

/**
 * After node i's sources were hashed again and found as its key has them (touched, not changed:
 * a checkout, a copy back, a source too young to vouch when the snapshot was written): the
 * witnesses that may vouch for them from now on, with their new stats. Only files, each unchanged
 * between `before` and now and old enough that its stat proves its content; else undefined (a
 * directory could hold an entry no witness names).
 */
export function settledSources(s: Snapshot, workspace: string, before: [number, Stats | undefined][]): Map<number, Stats> | undefined {
  const now = Date.now();
  const settled = new Map<number, Stats>();
  for (const [w, st] of before) {
    if (!st?.isFile() || now - st.mtimeMs < RACY_MS) return undefined;
    const again = lstatSync(statPath(s.paths[w]!, workspace), { throwIfNoEntry: false });
    if (!sameStat(again, statColumns(st), 0)) return undefined;
    settled.set(w, st);
  }
  return settled;
}

/** Keep the snapshot with these witnesses' stats as they are now (see settledSources). */
export function keepWithStats(loc: Pick<ProjectLocation, 'store' | 'variantKey'>, s: Snapshot, now: ReadonlyMap<number, Stats>): void {
  if (now.size > 0) keepSnapshot(loc, withStats(s, now));
}

/** The snapshot with these witnesses' stats as they are now. */
function withStats(s: Snapshot, now: ReadonlyMap<number, Stats>): Snapshot {
  if (now.size === 0) return s;
  const stats = Float64Array.from(s.stats);
  for (const [i, st] of now) stats.set(statColumns(st), 5 * i);
  return { ...s, stats };
}

/** The nodes (by index) with a source whose witness changed. */
function dirtyNodes(s: Snapshot, changed: ReadonlyMap<number, unknown>): number[] {
  const dirty: number[] = [];
  if (changed.size === 0) return dirty;
  for (let n = 0; n < s.ids.length; n++) {
    for (let k = s.sourcesAt[n]!; k < s.sourcesAt[n + 1]!; k++) {
      if (changed.has(s.sourceWitnesses[k]!)) {
        dirty.push(n);
        break;
      }
    }
  }
  return dirty;
}

/**
 * The snapshot, if usable for this expansion: written for this pipeline and runtime, and nothing
 * but sources changed since (an output, a directory on the way or a record shard changed:
 * undefined).
 */
export function checkSnapshot(loc: ProjectLocation, runtimeOf: (backend: string | undefined) => Record<string, string>): SnapshotCheck | undefined {
  const s = readSnapshot(loc, runtimeOf);
  return s && checkReadSnapshot(loc, s);
}

/** checkSnapshot of a snapshot already read. */
export function checkReadSnapshot(loc: SnapshotPlace, s: Snapshot): SnapshotCheck | undefined {
  if (s.expansionKey !== loc.expansionKey) return undefined;
  const changed = changedWitnesses(s, loc.workspace);
  const held = wayChangesHold(s, changed, loc);
  if (!held) return undefined;
  return { snap: withStats(s, held), dirty: dirtyNodes(s, changed), restated: held.size > 0 };
}

/**
 * What a snapshot written for an earlier version of the pipeline still vouches for: if no output,
 * directory on the way or record shard changed since, each node whose sources did not change was
 * served by record execKeys[i] with its outputs in place. The planner uses it for a node whose
 * plan key and reads are the snapshot's and whose upstream nodes it used too (their records, so
 * their outputs, are the ones this node's key was computed from): the execution key is then the
 * snapshot's, found without reading a record.
 */
export interface PriorResults {
  snap: Snapshot;
  /** Node id to its index in the snapshot, for the nodes whose sources did not change. */
  clean: Map<string, number>;
  /** No witness changed at all: a plan that uses the snapshot for every node can keep its witnesses. */
  unchanged: boolean;
  /** What served each node, from the snapshot's served set (when it has one that can be read; see planner.ts). */
  served?: ServedNodes;
}

/** What a run's served set says of each node it served: its metrics, and its outputs' digests when it kept them. */
export type ServedNodes = ReadonlyMap<string, { metrics?: Record<string, number>; outputs?: Record<string, string> }>;

export function priorResults(loc: SnapshotPlace, s: Snapshot): PriorResults | undefined {
  const changed = changedWitnesses(s, loc.workspace);
  const held = wayChangesHold(s, changed, loc);
  if (!held) return undefined;
  const dirty = new Set(dirtyNodes(s, changed));
  const clean = new Map<string, number>();
  s.ids.forEach((id, i) => dirty.has(i) || clean.set(id, i));
  return { snap: withStats(s, held), clean, unchanged: changed.size === held.size };
}

/**
 * Which outputs of which upstream nodes a node reads: its execution key depends on them, and its
 * plan key does not (an output read through a dependency path is not in the command).
 */
export function readsSignature(graph: Graph, id: string): string {
  const consumes = graph.consumes.get(id)!;
  if (consumes.size === 0) return '';
  let text = '';
  for (const [u, outs] of consumes) text += `${u}\0${outs.join('\0')}\n`;
  // Most nodes read one or two upstream nodes: the text itself is shorter than a digest.
  return text.length <= 64 ? text : createHash('sha256').update(text).digest('base64');
}

/**
 * After a plan that found every node as the prior snapshot had it (see PriorResults, nothing
 * changed), the same witnesses vouch for the new expansion: the snapshot is written again with the
 * new pipeline's key and what status prints, without a stat or a record read.
 */
export function restampSnapshot(project: Project, prior: PriorResults): boolean {
  const { snap } = prior;
  const order = project.graph.order;
  if (!prior.unchanged || order.length !== snap.ids.length || order.some((n, i) => n.id !== snap.ids[i])) return false;
  keepSnapshot(project, { ...snap, ...projectFields(project), ...pipelineColumns(project) });
  return true;
}

/**
 * A snapshot whose witnesses still hold, filed again under the pipeline file as it is now (an
 * edit the snapshot still vouches for): the next command is told from it without planning. A
 * pipeline file edited only in its comments or layout is the same pipeline, so a snapshot read
 * for it (`snap` bearing its new expansion key) is kept as it is.
 */
export function keepSnapshot(loc: Pick<ProjectLocation, 'store' | 'variantKey'>, snap: Snapshot): void {
  try {
    writeFileAtomic(snapshotPath(loc), encodeSections(SNAPSHOT_FILE, snap), { durable: false });
  } catch {
    // a read-only or full cache: the next command plans (or parses the file) again
  }
}

function projectFields(project: Project): Pick<Snapshot, 'format' | 'expansionKey' | 'meaningKey' | 'runtime' | 'backend' | 'report' | 'executor' | 'remote' | 'header' | 'outside' | 'params'> {
  return {
    format: SNAPSHOT_FORMAT, expansionKey: project.expansionKey, meaningKey: project.meaningKey, runtime: project.runtime, backend: project.backend, report: project.report !== undefined, executor: project.executor, remote: project.remote,
    header: { name: project.name, displayPath: project.displayPath, members: project.members, instances: project.instances, nodes: (project.part?.order ?? project.nodes).length },
    outside: project.outside, params: project.params,
  };
}

function pipelineColumns(project: Project): Pick<Snapshot, 'resources' | 'stages' | 'stageOf'> {
  const order = project.graph.order;
  const resources: Record<string, number> = {};
  for (const n of order) for (const [r, a] of Object.entries(n.resources)) resources[r] = Math.max(resources[r] ?? 0, a);
  const stages = [...new Set(order.map((n) => n.stage))];
  const stageIndex = new Map(stages.map((s, i) => [s, i]));
  return { resources, stages, stageOf: Uint32Array.from(order, (n) => stageIndex.get(n.stage)!) };
}

/** Why a snapshot cannot be written: something is not as it must be, or not witnessable. */
class NotWitnessable extends Error {}

/**
 * Write the snapshot of a project whose every node is served by `served` (found cached, or just
 * run). Checks all of it again first; writes nothing if anything is not in place. A directory
 * changed within the last clock tick (a run's last output) is waited for, once. A node served
 * without reading its record (as the plan found it in the snapshot) has it read here.
 */
export async function writeSnapshot(project: Project, served: ReadonlyMap<string, Served>, servedDigest?: string, wroteAt?: number): Promise<void> {
  // A snapshot vouches for the whole pipeline variant; part of it says nothing of the rest.
  if (project.targets || project.part) return;
  await tickAfter(wroteAt);
  const records = new Map<string, NodeRecord>();
  for (const [id, s] of served) {
    const record = s.record ?? readRecord(project.store, s.execKey);
    if (!record) return;
    records.set(id, record);
  }
  await retryOnce(() => tryWriteSnapshot(project, records, servedDigest));
}

/**
 * After a run planned from the snapshot (only sources changed since it was written): the snapshot
 * again, without reading the records of the nodes served as it had them. The nodes that ran, were
 * restored or were keyed again are witnessed afresh; every other witness keeps its stat, which the
 * run's check found unchanged (so whatever changed it since is seen by the next check), but for
 * the directories that hold results (on the way to them, record shards), which the run itself
 * changes: those are witnessed anew once what lies under them is checked again. Anything not as
 * it must be: the full write runs (none, for a project opened in part: the snapshot stays as it
 * was, and the next command, finding what the run changed, plans in full).
 */
export async function updateSnapshot(project: Project, check: SnapshotCheck, served: ReadonlyMap<string, Served>, servedDigest?: string, wroteAt?: number): Promise<void> {
  if (project.targets) return;
  await tickAfter(wroteAt);
  const done = await retryOnce(() => tryUpdateSnapshot(project, check, served, servedDigest));
  if (!done) await writeSnapshot(project, served, servedDigest);
}

/**
 * A run's last results were written by `wroteAt`: the outputs and the directories that hold them
 * are young until a tick has passed, and a write that found them so would wait, then witness
 * everything again (a second pass over every witness after each full run). Waiting first costs
 * the tick alone.
 */
async function tickAfter(wroteAt: number | undefined): Promise<void> {
  const wait = wroteAt === undefined ? 0 : wroteAt + DIR_RACY_MS + 1 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

/** `attempt` gives how long to wait before trying again, or undefined when done (or given up). */
async function retryOnce<T>(attempt: () => number | T): Promise<T | undefined> {
  const first = attempt();
  if (typeof first !== 'number') return first;
  await new Promise((r) => setTimeout(r, first));
  const second = attempt();
  return typeof second === 'number' ? undefined : second;
}

/**
 * The witnesses of a snapshot being written: each path once, with the stat it had when first
 * witnessed (see the header comment for what each kind guards).
 */
class Witnesses {
  readonly paths: string[];
  /** Five numbers a witness (statColumns), in a buffer grown as witnesses are added: a copy of 150,000 numbers into an array cost 7-11 ms a write. */
  private stats: Float64Array;
  /** How many of `stats` are witnesses' (the rest is room to grow). */
  private statsUsed: number;
  readonly index = new Map<string, number>();
  /** Witnesses whose change the snapshot cannot plan around (outputs, directories on the way, record shards). */
  readonly structural = new Set<number>();
  /** Directories on the way and record shards: the ones a run changes by adding its results. */
  readonly ways = new Set<number>();
  /** Witnessed by this writer (not kept from an earlier snapshot). */
  readonly fresh = new Set<number>();
  /** The stats to take again once a node is checked, so that what was checked is what was witnessed. */
  private readonly pending: [string, Stats][] = [];
  private readonly sharedDirs = new Set<string>();
  private readonly now = Date.now();
  wait = 0;

  constructor(
    private readonly project: Project,
    from?: { paths: string[]; stats: Float64Array },
  ) {
    this.paths = from ? [...from.paths] : [];
    this.stats = from ? Float64Array.from(from.stats) : new Float64Array(5 * 1024);
    this.statsUsed = from ? from.stats.length : 0;
    this.paths.forEach((p, i) => this.index.set(p, i));
  }

  private witness(abs: string, st: Stats, racyMs: number, kind: 'source' | 'structural' | 'way', own?: number[]): void {
    // A source this young: its stat cannot vouch for its content yet (an edit in the same tick
    // would leave it as it is). It is witnessed by a stat no file has, so the next check finds it
    // changed and hashes it again: one source costs that, not the whole snapshot (a run ending
    // within 2 s of an edit left none before, and the command after it planned in full).
    const young = this.now - st.mtimeMs < racyMs;
    const unproven = young && racyMs !== DIR_RACY_MS;
    if (young && !unproven) this.wait = Math.max(this.wait, racyMs - (this.now - st.mtimeMs) + 1);
    const path = pathOf(this.project.workspace, abs);
    this.pending.push([abs, st]);
    let i = this.index.get(path);
    if (i === undefined) {
      i = this.paths.push(path) - 1;
      this.index.set(path, i);
    }
    if (!this.fresh.has(i)) {
      this.fresh.add(i);
      this.setStat(i, st);
      if (unproven) this.setColumns(i, [NaN, NaN, NaN, NaN, NaN]);
    }
    if (kind === 'source') own!.push(i);
    else this.structural.add(i);
    if (kind === 'way') this.ways.add(i);
  }

  /** Directories on the way and record shards are shared by thousands of nodes: each is stat once. */
  private witnessDir(abs: string): void {
    if (this.sharedDirs.has(abs)) return;
    this.sharedDirs.add(abs);
    this.witness(abs, lstatSync(abs), DIR_RACY_MS, 'way');
  }

  /** The directories holding each directory on the way: one replaced (by a symlink that leads outside, say) changes its parent's mtime. */
  private above(abs: string): void {
    const { workspace } = this.project;
    for (let p = dirname(abs); p !== workspace && p !== dirname(p); p = dirname(p)) this.witnessDir(dirname(p));
  }

  /** Every entry under abs; symlinks allowed only where they are content (outputs). */
  private tree(abs: string, output: boolean, own: number[]): void {
    const st = lstatSync(abs);
    if (st.isSymbolicLink() && !output) throw new NotWitnessable('a followed symlink');
    // A source's content must be old enough to trust its stat; an output's files are sealed.
    this.witness(abs, st, output ? DIR_RACY_MS : RACY_MS, output ? 'structural' : 'source', own);
    if (st.isDirectory()) for (const name of readdirSync(abs)) this.tree(join(abs, name), output, own);
  }

  /**
   * Witness a node served by `record`, checking its sources' digests against the record's and its
   * outputs in place: its source witnesses, or undefined when it is not as the record says.
   */
  node(node: NodeDef, record: NodeRecord): number[] | undefined {
    const { workspace, store, digests, graph } = this.project;
    const own: number[] = [];
    const produced = graph.producedDeps.get(node.id)!;
    // Witnessed first, checked next, stat again last: what was checked is what was witnessed,
    // even if another run writes there meanwhile.
    for (const d of node.deps) {
      if (produced.has(d)) continue;
      const abs = resolve(workspace, d);
      this.tree(abs, false, own);
      this.above(abs);
      const digest = digests.digest(abs);
      if (digest === undefined || digest !== record.fingerprint.deps[d]) return undefined;
    }
    for (const [name, rel] of Object.entries(node.outs)) {
      const abs = join(workspace, rel);
      const entry = record.outputs[name];
      if (!entry || entry.path !== rel) return undefined;
      this.tree(abs, true, own);
      this.above(abs);
      if (outputState(store, digests, abs, entry) !== 'materialized') return undefined;
      // A sealed copy (cache on another filesystem) is not the object's inode: watch the object too.
      const files = entry.kind === 'file' ? [{ path: '', digest: entry.digest }] : entry.files!;
      for (const f of files) {
        const obj = store.objectPath(f.digest);
        const objSt = lstatSync(obj);
        if (objSt.ino !== lstatSync(f.path ? join(abs, f.path) : abs).ino) this.witness(obj, objSt, DIR_RACY_MS, 'structural');
      }
    }
    this.witnessDir(dirname(store.recordPath(record.execKey)));
    for (const [abs, st] of this.pending.splice(0)) {
      const again = lstatSync(abs);
      if (!sameStat(again, statColumns(st), 0)) return undefined;
    }
    return [...new Set(own)];
  }

  /** Witness i's stat is now `st` (a new witness: appended). */
  setStat(i: number, st: Stats): void {
    this.setColumns(i, statColumns(st));
  }

  private setColumns(i: number, columns: ArrayLike<number>): void {
    if (5 * i + 5 > this.stats.length) {
      const grown = new Float64Array(Math.max(2 * this.stats.length, 5 * i + 5));
      grown.set(this.stats.subarray(0, this.statsUsed));
      this.stats = grown;
    }
    this.stats.set(columns, 5 * i);
    this.statsUsed = Math.max(this.statsUsed, 5 * i + 5);
  }

  /** The columns a snapshot keeps of these witnesses. */
  columns(): Pick<Snapshot, 'paths' | 'stats' | 'structural' | 'ways'> {
    const sorted = (set: Set<number>): Uint32Array => Uint32Array.from(set).sort();
    return { paths: this.paths, stats: this.stats.slice(0, this.statsUsed), structural: sorted(this.structural), ways: sorted(this.ways) };
  }
}

/** Write it where it is read; a read-only or full cache: the next no-op plans in full. */
function saveSnapshot(project: Project, snapshot: Snapshot): void {
  try {
    const path = snapshotPath(project);
    writeFileAtomic(path, encodeSections(SNAPSHOT_FILE, snapshot), { durable: false });
    // The JSON file an earlier dfwe (snapshot format 9 and before) kept for this variant.
    rmSync(path.replace(/\.snap$/, '.json'), { force: true });
  } catch {
    // as said
  }
}

/** Undefined when written or not writable; else how long to wait before trying again. */
function tryWriteSnapshot(project: Project, records: ReadonlyMap<string, NodeRecord>, served: string | undefined): number | undefined {
  const { graph } = project;
  const w = new Witnesses(project);
  const ids: string[] = [];
  const planKeys: PlanKey[] = [];
  const execKeys: ExecKey[] = [];
  const reads: string[] = [];
  const sourcesAt: number[] = [0];
  const sourceWitnesses: number[] = [];
  const upstreamAt: number[] = [0];
  const upstreamNodes: number[] = [];
  const position = new Map(graph.order.map((n, i) => [n.id, i]));
  try {
    for (const node of graph.order) {
      const record = records.get(node.id);
      if (!record) return undefined;
      const own = w.node(node, record);
      if (!own) return undefined;
      pushAll(sourceWitnesses, own);
      sourcesAt.push(sourceWitnesses.length);
      for (const u of graph.upstream.get(node.id)!) upstreamNodes.push(position.get(u)!);
      upstreamAt.push(upstreamNodes.length);
      ids.push(node.id);
      planKeys.push(record.planKey);
      execKeys.push(record.execKey);
      reads.push(readsSignature(graph, node.id));
    }
  } catch (err) {
    if (err instanceof NotWitnessable || (err as NodeJS.ErrnoException).code) return undefined;
    throw err;
  }
  if (w.wait > 0) return w.wait;
  saveSnapshot(project, {
    ...projectFields(project), ...pipelineColumns(project), ids, planKeys, execKeys, reads, served, ...w.columns(),
    sourcesAt: Uint32Array.from(sourcesAt), sourceWitnesses: Uint32Array.from(sourceWitnesses), upstreamAt: Uint32Array.from(upstreamAt), upstreamNodes: Uint32Array.from(upstreamNodes),
  });
  return undefined;
}

/** True when written (or not writable), false when the full write must decide; else how long to wait. */
function tryUpdateSnapshot(project: Project, check: SnapshotCheck, served: ReadonlyMap<string, Served>, servedDigest: string | undefined): number | boolean {
  const { snap } = check;
  const { graph, store, workspace } = project;
  // A project opened in part was opened from this snapshot's nodes; a whole one must have them all, in order.
  if (!project.part && (graph.order.length !== snap.ids.length || graph.order.some((n, i) => n.id !== snap.ids[i]))) return false;
  const w = new Witnesses(project, { paths: snap.paths, stats: snap.stats });
  const dirty = new Set(check.dirty);
  const sources: ArrayLike<number>[] = [];
  const execKeys: ExecKey[] = [];
  const planKeys: PlanKey[] = [];
  /** Nodes served as the snapshot had them: nothing of theirs was read. */
  const kept: number[] = [];
  try {
    for (let i = 0; i < snap.ids.length; i++) {
      const s = served.get(snap.ids[i]!);
      if (!s) return false;
      execKeys.push(s.execKey);
      planKeys.push(s.planKey);
      if (!s.record && !dirty.has(i) && s.execKey === snap.execKeys[i]) {
        kept.push(i);
        sources.push(snap.sourceWitnesses.subarray(snap.sourcesAt[i], snap.sourcesAt[i + 1]));
        continue;
      }
      const node = graph.byId.get(snap.ids[i]!);
      const record = s.record ?? readRecord(store, s.execKey);
      const own = node && record && w.node(node, record);
      if (!own) return false;
      sources.push(own);
    }
    // What was not witnessed afresh keeps the stat the run's check found it with (the snapshot's):
    // a change since, by the run or beside it, differs from it and is seen by the next check. But
    // directories that hold results change by the run adding its own: those are witnessed anew.
    const { stats } = snap;
    const changedWays = new Set<string>();
    for (const i of snap.ways) {
      if (w.fresh.has(i)) continue;
      const p = snap.paths[i]!;
      const st = lstatSync(statPath(p, workspace), { throwIfNoEntry: false });
      if (sameStat(st, stats, 5 * i)) continue;
      if (!st || !st.isDirectory()) return false;
      // As a fresh witness: kept only once older than a tick, so a change after it moves it (recordsHold).
      const age = Date.now() - st.mtimeMs;
      if (age < DIR_RACY_MS) w.wait = Math.max(w.wait, DIR_RACY_MS - age + 1);
      w.setStat(i, st);
      changedWays.add(p);
    }
    if (changedWays.size > 0 && !keptStillInPlace(project, kept, snap, changedWays)) return false;
    for (const i of snap.structural) w.structural.add(i);
    for (const i of snap.ways) w.ways.add(i);
  } catch (err) {
    if (err instanceof NotWitnessable || (err as NodeJS.ErrnoException).code) return false;
    throw err;
  }
  if (w.wait > 0) return w.wait;
  const sourcesAt = new Uint32Array(sources.length + 1);
  sources.forEach((own, i) => (sourcesAt[i + 1] = sourcesAt[i]! + own.length));
  const sourceWitnesses = new Uint32Array(sourcesAt[sources.length]!);
  sources.forEach((own, i) => sourceWitnesses.set(own, sourcesAt[i]));
  saveSnapshot(project, { ...snap, ...projectFields(project), served: servedDigest, planKeys, execKeys, ...w.columns(), sourcesAt, sourceWitnesses });
  return true;
}

/**
 * A directory that holds results changed during the run (the run added its own): what lies under
 * it for the nodes served as the snapshot had them is looked at again. Each directory on the way
 * from it to their sources and to the outputs the snapshot witnessed must still be one (not a
 * symlink that leads elsewhere), and a record in a changed shard must still be there. (Their
 * files' own witnesses were unchanged.) The paths are the snapshot's, so a project opened in part
 * checks them as a whole one does.
 */
function keptStillInPlace(project: Project, kept: number[], snap: Snapshot, changed: ReadonlySet<string>): boolean {
  const { store, workspace } = project;
  const paths: string[] = [];
  for (const i of snap.structural) paths.push(snap.paths[i]!);
  for (const i of kept) {
    for (let k = snap.sourcesAt[i]!; k < snap.sourcesAt[i + 1]!; k++) paths.push(snap.paths[snap.sourceWitnesses[k]!]!);
    const record = store.recordPath(snap.execKeys[i]!);
    if (changed.has(pathOf(workspace, dirname(record))) && !lstatSync(record, { throwIfNoEntry: false })) return false;
  }
  return directoriesBelowHold(paths, changed, workspace);
}
