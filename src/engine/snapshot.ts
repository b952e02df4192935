import { lstatSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { outputState } from '../cache/restore.js';
import type { NodeRecord } from '../cache/records.js';
import type { Project, ProjectLocation } from '../project.js';
import { writeFileAtomic } from '../util/fsx.js';
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
 *   symlink (which would lead outside) changes its parent's mtime;
 * - the record shards, so a removed record is seen.
 * The pipeline's bytes, options, dfwe's and the stage types' versions are in its key, the ML
 * runtime in its body. Any difference, and the full plan runs, which then writes a new one.
 * A source changed within RACY_MS of being witnessed could hide an edit in the same timestamp
 * tick (a directory: within DIR_RACY_MS): then no snapshot is written.
 */

const SNAPSHOT_FORMAT = 7;
/** As FileDigests: a source file's stat proves its content once it is this old. */
const RACY_MS = 2000;
/**
 * Directories on the way and output directories need only outlast the clock's tick (1-10 ms on
 * Linux filesystems): what their stat guards is a change made after it was taken, which then
 * gets a later mtime. (Directories inside a source carry content and get RACY_MS.)
 */
const DIR_RACY_MS = 20;

type Witness = [path: string, dev: number, ino: number, size: number, mtimeMs: number, ctimeMs: number];

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
  runtime: Record<string, string>;
  /** The pipeline's runtime.backend, which the runtime is chosen from. */
  backend?: string;
  /** The pipeline has a report section (a run then ends with the metrics table). */
  report: boolean;
  /** The pipeline's executor setting. */
  executor?: string;
  /** The most of each resource token one node needs: a run with less plans in full (and says so). */
  resources: Record<string, number>;
  header: PipelineHeader;
  stages: string[];
  /** Per node, in pipeline order (columns: one array each, so that reading it is one parse and few objects). */
  ids: string[];
  stageOf: number[];
  planKeys: string[];
  execKeys: string[];
  /** Which outputs of which upstream nodes each node reads (see readsSignature). */
  reads: string[];
  /**
   * The witnessed paths (relative to the workspace where inside it) and, five numbers each, their
   * stats: a Float64Array in base64 (parsing 150,000 numbers as JSON was a fifth of reading it).
   */
  paths: string[];
  stats: string;
  /** Witnesses a change of which needs the full plan: outputs, directories on the way, record shards. */
  structural: number[];
  /** Per node, the witnesses of its sources (sourceWitnesses[sourcesAt[i] .. sourcesAt[i+1]]). */
  sourcesAt: number[];
  sourceWitnesses: number[];
  /** Per node, its upstream nodes by index, in the graph's order. */
  upstreamAt: number[];
  upstreamNodes: number[];
  outside: OutsideDirs;
  /** The pipeline's params (with `--param` values), for the run history of a no-op. */
  params: Record<string, unknown>;
  /** The run history's served set of these results (runs/served/), when a run wrote it. */
  served?: string;
}

/** One file per pipeline variant, replaced by each write: snapshots do not pile up with edits. */
function snapshotPath(loc: { store: { stateDir: string }; variantKey: string }): string {
  return join(loc.store.stateDir, 'snapshots', `${loc.variantKey}.json`);
}

/** A snapshot and the nodes whose sources changed since it was written (by index, in pipeline order). */
export interface SnapshotCheck {
  snap: Snapshot;
  dirty: number[];
}

/**
 * This pipeline variant's last snapshot, for whatever expansion it was written, if it is whole
 * and written for this ML runtime; undefined otherwise.
 */
export function readSnapshot(loc: ProjectLocation, runtimeOf: (backend: string | undefined) => Record<string, string>): Snapshot | undefined {
  let s: Snapshot;
  try {
    s = JSON.parse(readFileSync(snapshotPath(loc), 'utf8')) as Snapshot;
  } catch {
    return undefined;
  }
  // A snapshot only saves time: one of another shape is ignored.
  if (
    s?.format !== SNAPSHOT_FORMAT || typeof s.expansionKey !== 'string' || typeof s.resources !== 'object' || typeof s.header !== 'object' || !Array.isArray(s.stages) ||
    !Array.isArray(s.ids) || !Array.isArray(s.stageOf) || !Array.isArray(s.planKeys) || !Array.isArray(s.execKeys) || !Array.isArray(s.reads) ||
    !Array.isArray(s.paths) || typeof s.stats !== 'string' || !Array.isArray(s.structural) || typeof s.params !== 'object' || s.params === null || !isOutsideDirs(s.outside) || (s.served !== undefined && typeof s.served !== 'string') ||
    !Array.isArray(s.sourcesAt) || !Array.isArray(s.sourceWitnesses) || !Array.isArray(s.upstreamAt) || !Array.isArray(s.upstreamNodes) ||
    s.sourcesAt.length !== s.ids.length + 1 || s.upstreamAt.length !== s.ids.length + 1 || s.reads.length !== s.ids.length ||
    statsOf(s).length !== 5 * s.paths.length
  ) return undefined;
  let runtime: Record<string, string>;
  try {
    runtime = runtimeOf(s.backend);
  } catch {
    return undefined;
  }
  return JSON.stringify(runtime) === JSON.stringify(s.runtime) ? s : undefined;
}

const decodedStats = new WeakMap<Snapshot, Float64Array>();

function statsOf(s: Snapshot): Float64Array {
  let stats = decodedStats.get(s);
  if (!stats) {
    const bytes = Buffer.from(s.stats, 'base64');
    // Copied unless aligned: a Float64Array view needs an offset that is a multiple of 8.
    const aligned = bytes.byteOffset % 8 === 0 ? bytes : Buffer.from(bytes);
    stats = new Float64Array(aligned.buffer, aligned.byteOffset, Math.floor(aligned.length / 8));
    decodedStats.set(s, stats);
  }
  return stats;
}

/** The witnesses whose stat differs from the snapshot's now (by index into its paths). */
function changedWitnesses(s: Snapshot, workspace: string): Set<number> {
  const { paths } = s;
  const stats = statsOf(s);
  const base = `${workspace}/`;
  const changed = new Set<number>();
  for (let i = 0, j = 0; i < paths.length; i++, j += 5) {
    const p = paths[i]!;
    const st = lstatSync(p[0] === '/' ? p : p === '.' ? workspace : base + p, { throwIfNoEntry: false });
    if (!st || st.dev !== stats[j] || st.ino !== stats[j + 1] || st.size !== stats[j + 2] || st.mtimeMs !== stats[j + 3] || st.ctimeMs !== stats[j + 4]) changed.add(i);
  }
  return changed;
}

/** The nodes (by index) with a source whose witness changed. */
function dirtyNodes(s: Snapshot, changed: ReadonlySet<number>): number[] {
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
export function checkReadSnapshot(loc: ProjectLocation, s: Snapshot): SnapshotCheck | undefined {
  if (s.expansionKey !== loc.expansionKey) return undefined;
  const changed = changedWitnesses(s, loc.workspace);
  for (const i of s.structural) if (changed.has(i)) return undefined;
  return { snap: s, dirty: dirtyNodes(s, changed) };
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
}

export function priorResults(loc: ProjectLocation, s: Snapshot): PriorResults | undefined {
  const changed = changedWitnesses(s, loc.workspace);
  for (const i of s.structural) if (changed.has(i)) return undefined;
  const dirty = new Set(dirtyNodes(s, changed));
  const clean = new Map<string, number>();
  s.ids.forEach((id, i) => dirty.has(i) || clean.set(id, i));
  return { snap: s, clean, unchanged: changed.size === 0 };
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
  const { resources, stages, stageOf } = pipelineColumns(project);
  const snapshot: Snapshot = { ...snap, ...projectFields(project), resources, stages, stageOf };
  try {
    writeFileAtomic(snapshotPath(project), JSON.stringify(snapshot), { durable: false });
  } catch {
    // a read-only or full cache: the next no-op plans in full
  }
  return true;
}

function projectFields(project: Project): Pick<Snapshot, 'format' | 'expansionKey' | 'runtime' | 'backend' | 'report' | 'executor' | 'header' | 'outside' | 'params'> {
  return {
    format: SNAPSHOT_FORMAT, expansionKey: project.expansionKey, runtime: project.runtime, backend: project.backend, report: project.report !== undefined, executor: project.executor,
    header: { name: project.name, displayPath: project.displayPath, members: project.members, instances: project.instances, nodes: project.nodes.length },
    outside: project.outside, params: project.params,
  };
}

function pipelineColumns(project: Project): { resources: Record<string, number>; stages: string[]; stageOf: number[] } {
  const order = project.graph.order;
  const resources: Record<string, number> = {};
  for (const n of order) for (const [r, a] of Object.entries(n.resources)) resources[r] = Math.max(resources[r] ?? 0, a);
  const stages = [...new Set(order.map((n) => n.stage))];
  const stageIndex = new Map(stages.map((s, i) => [s, i]));
  return { resources, stages, stageOf: order.map((n) => stageIndex.get(n.stage)!) };
}

/** Why a snapshot cannot be written: something is not as it must be, or not witnessable. */
class NotWitnessable extends Error {}

/**
 * Write the snapshot of a project whose every node is served by `records` (found cached, or just
 * run). Checks all of it again first; writes nothing if anything is not in place. A directory
 * changed within the last clock tick (a run's last output) is waited for, once.
 */
export async function writeSnapshot(project: Project, records: ReadonlyMap<string, NodeRecord>, served?: string): Promise<void> {
  // A snapshot vouches for the whole pipeline variant; part of it says nothing of the rest.
  if (project.targets) return;
  const wait = tryWriteSnapshot(project, records, served);
  if (wait === undefined) return;
  await new Promise((r) => setTimeout(r, wait));
  tryWriteSnapshot(project, records, served);
}

/** Undefined when written or not writable; else how long to wait before trying again. */
function tryWriteSnapshot(project: Project, records: ReadonlyMap<string, NodeRecord>, served: string | undefined): number | undefined {
  const { workspace, store, digests, graph } = project;
  const witnesses = new Map<string, Witness>();
  const index = new Map<string, number>();
  /** Witnesses whose change the snapshot cannot plan around (outputs, directories on the way, record shards). */
  const structural = new Set<number>();
  /** The source witnesses of the node being visited: a change there reruns it (and what follows). */
  let own: number[] | undefined;
  /** This node's witnesses, stat again once its sources and outputs are checked. */
  const pending: [string, Stats][] = [];
  const now = Date.now();
  let wait = 0;
  const witness = (abs: string, st: Stats, racyMs: number, source = false): void => {
    if (now - st.mtimeMs < racyMs) {
      if (racyMs !== DIR_RACY_MS) throw new NotWitnessable('a source changed too recently');
      wait = Math.max(wait, racyMs - (now - st.mtimeMs) + 1);
    }
    const rel = relative(workspace, abs);
    const path = rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? abs : rel;
    pending.push([abs, st]);
    let i = index.get(path);
    if (i === undefined) {
      i = witnesses.size;
      index.set(path, i);
      witnesses.set(path, [path, st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs]);
    }
    if (source) own!.push(i);
    else structural.add(i);
  };
  // Directories on the way and record shards are shared by thousands of nodes: each is stat
  // once. (Its first stat is the one kept; if it changes later, the snapshot is not used.)
  const sharedDirs = new Set<string>();
  const witnessDir = (abs: string): void => {
    if (sharedDirs.has(abs)) return;
    sharedDirs.add(abs);
    witness(abs, lstatSync(abs), DIR_RACY_MS);
  };
  const above = (abs: string): void => {
    // The directories holding each directory on the way: one replaced (by a symlink that leads
    // outside, say) changes its parent's mtime.
    for (let p = dirname(abs); p !== workspace && p !== dirname(p); p = dirname(p)) witnessDir(dirname(p));
  };
  /** Every entry under abs; symlinks allowed only where they are content (outputs). */
  const tree = (abs: string, output: boolean): void => {
    const st = lstatSync(abs);
    if (st.isSymbolicLink() && !output) throw new NotWitnessable('a followed symlink');
    // A source's content must be old enough to trust its stat; an output's files are sealed.
    witness(abs, st, output ? DIR_RACY_MS : RACY_MS, !output);
    if (st.isDirectory()) for (const name of readdirSync(abs)) tree(join(abs, name), output);
  };
  const { resources, stages, stageOf } = pipelineColumns(project);
  const ids: string[] = [];
  const planKeys: string[] = [];
  const execKeys: string[] = [];
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
      own = [];
      const produced = graph.producedDeps.get(node.id)!;
      const sources = node.deps.filter((d) => !produced.has(d)).map((d): [string, string] => [d, resolve(workspace, d)]);
      // Witnessed first, checked next, stat again last: what was checked is what was witnessed,
      // even if another run writes there meanwhile.
      for (const [name, abs] of sources) {
        tree(abs, false);
        above(abs);
        const digest = digests.digest(abs);
        if (digest === undefined || digest !== record.fingerprint.deps[name]) return undefined;
      }
      for (const [name, rel] of Object.entries(node.outs)) {
        const abs = join(workspace, rel);
        const entry = record.outputs[name];
        if (!entry || entry.path !== rel) return undefined;
        tree(abs, true);
        above(abs);
        if (outputState(store, digests, abs, entry) !== 'materialized') return undefined;
        // A sealed copy (cache on another filesystem) is not the object's inode: watch the object too.
        const files = entry.kind === 'file' ? [{ path: '', digest: entry.digest }] : entry.files!;
        for (const f of files) {
          const obj = store.objectPath(f.digest);
          const objSt = lstatSync(obj);
          if (objSt.ino !== lstatSync(f.path ? join(abs, f.path) : abs).ino) witness(obj, objSt, DIR_RACY_MS);
        }
      }
      const shard = dirname(store.recordPath(record.execKey));
      witnessDir(shard);
      for (const [abs, st] of pending.splice(0)) {
        const again = lstatSync(abs);
        if (again.ino !== st.ino || again.dev !== st.dev || again.size !== st.size || again.mtimeMs !== st.mtimeMs || again.ctimeMs !== st.ctimeMs) return undefined;
      }
      pushAll(sourceWitnesses, new Set(own));
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
  if (wait > 0) return wait;
  const snapshot: Snapshot = {
    ...projectFields(project), resources, stages, stageOf, ids, planKeys, execKeys, reads, served,
    paths: [...witnesses.keys()], stats: Buffer.from(new Float64Array([...witnesses.values()].flatMap((w) => w.slice(1) as number[])).buffer).toString('base64'),
    structural: [...structural].sort((a, b) => a - b), sourcesAt, sourceWitnesses, upstreamAt, upstreamNodes,
  };
  try {
    writeFileAtomic(snapshotPath(project), JSON.stringify(snapshot), { durable: false });
  } catch {
    // a read-only or full cache: the next no-op plans in full
  }
  return undefined;
}
