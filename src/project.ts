import { closeSync, existsSync, openSync, readFileSync, readSync, realpathSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CacheStore } from './cache/store.js';
import { didYouMean, UserError, type SourceLocation } from './diagnostics.js';
import type { SourceFile } from './pipeline/source.js';
import { buildGraph, type Graph } from './graph.js';
import { FileDigests } from './keys/file-digests.js';
import type { NodeDef, RawPipeline, ReportSpec } from './pipeline/types.js';
import { readPipelineText } from './pipeline/read.js';
import { digestBytes, keyOf } from './util/hash.js';
import { readTextFile, writeFileAtomic } from './util/fsx.js';
import { DFWE_VERSION } from './version.js';
import { chooseBackend, runtimeIdentity } from './ml/runtime.js';
import { Bounds, isOutsideDirs, type OutsideDirs } from './workspace-bounds.js';
import type { StageType } from './stage-type.js';
import type { ExecutorKind } from './executor.js';

export interface ProjectOptions {
  /** Pipeline file; default: dfwe.yaml in the workspace, else the embedded quickstart. */
  pipeline?: string;
  workspace: string;
  cacheDir?: string;
  /** Keep only these sweep members (`--only var=value`, repeatable: any of the values). */
  only?: Record<string, string[]>;
  /** Param values that replace the pipeline's own (`--param name=value`). */
  params?: Record<string, unknown>;
  /** ML backend: auto (default), tensorflow-gpu, tensorflow, wasm or cpu. */
  backend?: string;
  /** The built-in stage types a pipeline may use (`uses:`), by name: stages/index.ts for the CLI. */
  stageTypes: ReadonlyMap<string, StageType>;
  /** The executors nodes may run on, by name: src/execute/executors/index.ts for the CLI. */
  executors: ReadonlyMap<string, ExecutorKind>;
}

export interface Project {
  workspace: string;
  pipelinePath: string;
  /** The pipeline path as the user sees it, for messages. */
  displayPath: string;
  /** The digest of the pipeline file's bytes. */
  pipelineDigest: string;
  name: string;
  nodes: NodeDef[];
  /** Sweep members expanded, and stage instances before identical ones were merged. */
  members: number;
  instances: number;
  graph: Graph;
  store: CacheStore;
  digests: FileDigests;
  /** The ML runtime identity that ML stages run on and are keyed by. */
  runtime: Record<string, string>;
  /** The pipeline's `runtime.backend`, if it sets one. */
  backend?: string;
  /** What the expanded nodes depend on, and which pipeline variant this is (see locateProject). */
  expansionKey: string;
  variantKey: string;
  /** What the pipeline says, whatever its comments and layout (see ProjectLocation.meaning). */
  meaningKey: string;
  /** What `dfwe metrics` compares, if the pipeline says. */
  report?: ReportSpec;
  /** The pipeline's `strict`: undeclared files named in commands are errors. */
  strict: boolean;
  /** The pipeline's params as this run sees them: the file's, with `--param` values in their place. */
  params: Record<string, unknown>;
  /** The `--param` values it was opened with, and its `--only` filters. */
  overrides: Record<string, unknown>;
  only: Record<string, string[]>;
  /** The pipeline's `executor`, if it sets one (`--executor` overrides it). */
  executor?: string;
  executors: ReadonlyMap<string, ExecutorKind>;
  /** The pipeline's `remote`, if it names one (`--remote` and $DFWE_REMOTE override it). */
  remote?: string;
  /** Directories outside the workspace: allow_outside (written and read through symlinks) and read_only. */
  outside: OutsideDirs;
  /** Where dfwe may read and write: the workspace, allow_outside and read_only, by real path. */
  bounds: Bounds;
  /** The nodes asked for (`dfwe run NODE|STAGE …`): the graph holds them and what they need, nothing else. */
  targets?: string[];
  /** Persist memos (parsed pipeline, file digests) once planning succeeded: bad input writes nothing. */
  saveState(): void;
}

export const EMBEDDED_QUICKSTART = fileURLToPath(new URL('../../pipelines/quickstart.yaml', import.meta.url));

export function defaultJobs(): number {
  return Math.max(1, cpus().length);
}

export function resolvePipelinePath(workspace: string, pipeline?: string): string {
  if (pipeline) return resolve(workspace, pipeline);
  const local = join(workspace, 'dfwe.yaml');
  return existsSync(local) ? local : EMBEDDED_QUICKSTART;
}

/** A pipeline's path as the user sees it: relative to the workspace when inside it. */
export function displayPathOf(workspace: string, pipelinePath: string): string {
  const rel = relative(workspace, pipelinePath);
  return rel.startsWith('..') || isAbsolute(rel) ? pipelinePath : rel;
}

export function cacheRoot(workspace: string, cacheDir?: string): string {
  const root = resolve(workspace, cacheDir ?? process.env.DFWE_CACHE ?? 'cache');
  try {
    return realpathSync(root);
  } catch {
    return root;
  }
}

/** The workspace's real path; a missing one is a clear error. */
export function realWorkspace(dir: string): string {
  try {
    const real = realpathSync(resolve(dir));
    if (!statSync(real).isDirectory()) throw new UserError(`the workspace ${dir} is not a directory`);
    return real;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`the workspace ${dir} does not exist`);
  }
}

/** Where a project is (workspace, pipeline, cache) and what its expansion depends on, read before anything is expanded. */
export interface ProjectLocation {
  workspace: string;
  pipelinePath: string;
  displayPath: string;
  store: CacheStore;
  text: string;
  /** The digest of `text`. */
  pipelineDigest: string;
  /** Everything the expanded nodes depend on: the pipeline's bytes, options, versions. */
  expansionKey: string;
  /** This pipeline file in this workspace with these options, whatever its content. */
  variantKey: string;
  /**
   * What the pipeline says, whatever its comments and layout: expansionKey with the parsed
   * document in place of the bytes (meaningKey). Parsed when asked; undefined when it does not parse.
   */
  meaning(): Promise<string | undefined>;
  /** meaningKey of the document `text` parses to. */
  meaningOf(data: unknown): string;
}

/**
 * Two pipeline files that parse to the same document (in the same order) expand to the same
 * nodes: only their source locations differ. `parts`: everything else the expansion depends on.
 */
function meaningKey(parts: unknown[], data: unknown): string {
  return keyOf([...parts, JSON.stringify(data)]);
}

export function locateProject(opts: ProjectOptions): ProjectLocation {
  // The real path: one workspace reached through a symlink is still one workspace (its leases,
  // its attempts), whichever path a run was started with.
  const workspace = realWorkspace(opts.workspace);
  const pipelinePath = resolvePipelinePath(workspace, opts.pipeline);
  const displayPath = displayPathOf(workspace, pipelinePath);
  const store = new CacheStore(cacheRoot(workspace, opts.cacheDir));
  const text = readPipelineText(pipelinePath, displayPath);
  const stageVersions = [...opts.stageTypes.values()].map((t) => [t.name, t.version]);
  const pipelineDigest = digestBytes(text);
  const parts = [EXPANSION_FORMAT, DFWE_VERSION, stageVersions, [...opts.executors.keys()], displayPath, opts.only ?? {}, opts.params ?? {}];
  const expansionKey = keyOf([...parts, pipelineDigest]);
  const variantKey = keyOf([workspace, displayPath, opts.only ?? {}, opts.params ?? {}]);
  const meaningOf = (data: unknown): string => meaningKey(parts, data);
  const meaning = async (): Promise<string | undefined> => {
    const { parsePipeline } = await import('./pipeline/load.js');
    try {
      return meaningOf(parsePipeline(text, displayPath).data);
    } catch (err) {
      if (err instanceof UserError) return undefined; // said, located, by the full plan
      throw err;
    }
  };
  return { workspace, pipelinePath, displayPath, store, text, pipelineDigest, expansionKey, variantKey, meaning, meaningOf };
}

/** The runtime identity ML nodes are keyed by: `--backend`, else the pipeline's, else auto. */
export function runtimeFor(requested: string | undefined): Record<string, string> {
  try {
    return runtimeIdentity(chooseBackend(requested));
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}

export async function openProject(opts: ProjectOptions): Promise<Project> {
  const { workspace, pipelinePath, displayPath, store, text, pipelineDigest, expansionKey, variantKey, meaningOf } = locateProject(opts);
  const { nodes, name, members, instances, backend, report, strict, params, executor, remote, outside, meaningKey, memoised, save } = await expandCached(text, displayPath, store, { expansionKey, variantKey, meaningOf }, opts.stageTypes, opts.executors, opts.only ?? {}, opts.params ?? {});
  const runtime = runtimeFor(opts.backend ?? backend);
  // A memo is written only for nodes whose graph was built: their outputs were found not to overlap.
  const graph = buildGraph(nodes, { outputsChecked: memoised });
  const bounds = new Bounds(workspace, outside, [{ path: store.root, what: "dfwe's cache" }, { path: pipelinePath, what: 'the pipeline file' }]);
  const digests = new FileDigests(join(store.stateDir, 'file-digests.cols'), bounds);
  const saveState = (): void => {
    store.claim();
    save();
    digests.save();
    // The memo's JSON form, before it was a file of columns.
    try {
      for (const legacy of ['file-digests.json', 'file-digests.json.log']) rmSync(join(store.stateDir, legacy), { force: true });
    } catch {
      // a memo only saves time
    }
  };
  return { workspace, pipelinePath, displayPath, pipelineDigest, name, nodes, members, instances, graph, store, digests, runtime, backend, expansionKey, variantKey, meaningKey, report, strict, params, overrides: opts.params ?? {}, only: opts.only ?? {}, executor, executors: opts.executors, remote, outside, bounds, saveState };
}

/*
 * Parsing and validating YAML is the slow part of a no-op (npm `yaml` needs ~1.8 s for 10,000
 * entries), and its result depends only on the file's bytes, dfwe's version and the stage
 * types' versions. So the expanded nodes are memoised by those, in state/pipelines/.
 */
/** Bumped whenever what expansion records changes, so an older memo is never read. */
const EXPANSION_FORMAT = 18;

interface Expanded {
  /** What it was expanded from (see locateProject). */
  expansionKey: string;
  /** What the pipeline says (see ProjectLocation.meaning). */
  meaningKey: string;
  nodes: NodeDef[];
  name: string;
  members: number;
  instances: number;
  /** The pipeline's `runtime.backend`, if it sets one. */
  backend?: string;
  /** The pipeline's `report` section (what `dfwe metrics` compares). */
  report?: ReportSpec;
  /** The pipeline's `strict`: undeclared files named in commands are errors. */
  strict: boolean;
  params: Record<string, unknown>;
  executor?: string;
  /** The pipeline's `remote`, if it names one. */
  remote?: string;
  outside: OutsideDirs;
}

async function expandCached(text: string, displayPath: string, store: CacheStore, loc: Pick<ProjectLocation, 'expansionKey' | 'variantKey' | 'meaningOf'>, stageTypes: ReadonlyMap<string, StageType>, executors: ReadonlyMap<string, ExecutorKind>, only: Record<string, string[]>, params: Record<string, unknown>): Promise<Expanded & { memoised: boolean; save: () => void }> {
  // One memo per pipeline variant, replaced when the file changes: edits do not pile up memos
  // (14 MB each at 20,000 nodes).
  const memoPath = join(store.stateDir, 'pipelines', `${loc.variantKey}.json`);
  const relocationPath = `${memoPath}.relocated`;
  let memoFor: { expansionKey?: string; meaningKey?: string } = {};
  try {
    // The memo of an earlier version of the file (megabytes) is told by its first bytes, unparsed.
    memoFor = memoKeys(memoPath);
    if (memoFor.expansionKey === loc.expansionKey) {
      const memo: unknown = fromMemo(JSON.parse(readTextFile(memoPath)));
      // A memo only saves time: one of another shape (edited, damaged) is parsed again, not used.
      if (isExpanded(memo) && memo.expansionKey === loc.expansionKey) return { ...memo, memoised: true, save: () => {} };
    }
    // The file as it is now was found to say what the memo's says, its locations found again.
    const moved = readRelocation(relocationPath);
    if (moved && moved.expansionKey === loc.expansionKey && moved.memoExpansionKey === memoFor.expansionKey) {
      const memo: unknown = fromMemo(JSON.parse(readTextFile(memoPath)), moved.locations);
      if (isExpanded(memo) && memo.expansionKey === moved.memoExpansionKey) return { ...memo, expansionKey: loc.expansionKey, memoised: true, save: () => {} };
    }
  } catch {
    // not memoised yet
  }
  // Loaded only when needed: a memoised pipeline never pays for the parser and the validator.
  const { parsePipeline } = await import('./pipeline/load.js');
  const { source, data } = parsePipeline(text, displayPath);
  // Before --param values are put in: they are in the key's other parts.
  const meaningKey = loc.meaningOf(data);
  // The file was edited only in its comments or layout: the memo's nodes, their locations found again in it.
  // It is not written again (megabytes): the locations found again are filed beside it, for the
  // next command to use without parsing the file.
  if (memoFor.meaningKey === meaningKey && memoFor.expansionKey !== undefined) {
    const memoExpansionKey = memoFor.expansionKey;
    try {
      const raw = JSON.parse(readTextFile(memoPath)) as Memo;
      const locations = relocate(raw.locations, source);
      const memo: unknown = fromMemo(raw, locations);
      if (isExpanded(memo) && memo.meaningKey === meaningKey && memo.expansionKey === memoExpansionKey) {
        const result: Expanded = { ...memo, expansionKey: loc.expansionKey };
        return { ...result, memoised: true, save: () => writeRelocation(relocationPath, { expansionKey: loc.expansionKey, memoExpansionKey, locations: locations! }) };
      }
    } catch {
      // expanded again below
    }
  }
  const [{ validatePipeline }, { expandPipeline }] = await Promise.all([import('./pipeline/validate.js'), import('./pipeline/expand.js')]);
  validatePipeline(data, source, stageTypes, executors);
  const raw = data as RawPipeline;
  overrideParams(raw, params, displayPath);
  const { nodes, members, instances, readOnly } = expandPipeline(raw, source, stageTypes, { only, executors });
  const result: Expanded = { expansionKey: loc.expansionKey, meaningKey, nodes, name: raw.name ?? displayPath, members, instances, backend: raw.runtime?.backend, report: raw.report, params: raw.params ?? {}, executor: raw.executor, remote: raw.remote, strict: raw.strict === true, outside: { allow: raw.allow_outside ?? [], readOnly } };
  return { ...result, memoised: false, save: saver(memoPath, result) };
}

function saver(memoPath: string, result: Expanded): () => void {
  return () => {
    try {
      writeFileAtomic(memoPath, JSON.stringify(toMemo(result)), { durable: false });
    } catch {
      // a read-only cache still runs; it only re-parses next time
    }
  };
}

/**
 * The memo's form: every node's source locations as indexes into one table, and each node's
 * `loc` one of a table of shapes (all instances of a stage have the same). Written out per node,
 * locations were 40% of the memo; decoded per node, they were a fifth of its objects. A command
 * stage's `commands` is left out when it is only its `cmd`.
 */
interface Memo extends Omit<Expanded, 'nodes'> {
  locations: SourceLocation[];
  locShapes: LocShape[];
  /** The distinct values of the SHARED fields: each node gives an index for each. */
  values: unknown[];
  nodes: (Omit<NodeDef, 'loc' | 'commands' | SharedField> & { loc: number; commands?: NodeDef['commands'] } & Record<SharedField, number>)[];
}

/**
 * Fields most nodes have the same value of (often empty, or the pipeline's whole params): kept
 * once in the memo and decoded into one frozen object that those nodes share. Decoded per node,
 * they were eight of each node's fourteen objects.
 */
const SHARED = ['params', 'pipelineParams', 'env', 'metricsFiles', 'resources', 'executorOptions', 'outKinds'] as const;
type SharedField = (typeof SHARED)[number];

interface LocShape {
  stage: number;
  deps: number[];
  outs: Record<string, number>;
  commands: number[];
}

function toMemo(e: Expanded): Memo {
  const index = new Map<SourceLocation, number>();
  const locations: SourceLocation[] = [];
  const at = (l: SourceLocation): number => index.get(l) ?? (index.set(l, locations.push(l) - 1), locations.length - 1);
  const intern = <T>(table: T[], seen: Map<string, number>, value: T): number => {
    // Most of a node's shared fields are empty: 140,000 of them stringified took a tenth of a 20,002-node memo's writing.
    const text = isEmpty(value) ? (Array.isArray(value) ? '[]' : '{}') : JSON.stringify(value);
    let i = seen.get(text);
    if (i === undefined) seen.set(text, (i = table.push(value) - 1));
    return i;
  };
  const locShapes: LocShape[] = [];
  const shapeIndex = new Map<string, number>();
  const values: unknown[] = [];
  const valueIndex = new Map<string, number>();
  const nodes = e.nodes.map((n) => {
    const shape: LocShape = { stage: at(n.loc.stage), deps: n.loc.deps.map(at), outs: Object.fromEntries(Object.entries(n.loc.outs).map(([o, l]) => [o, at(l)])), commands: n.loc.commands.map(at) };
    const { loc: _, commands, ...rest } = n;
    const node: Record<string, unknown> = { ...rest, loc: intern(locShapes, shapeIndex, shape) };
    if (!onlyCmd(n)) node.commands = commands;
    for (const f of SHARED) node[f] = intern(values, valueIndex, n[f]);
    return node as Memo['nodes'][number];
  });
  return { ...e, locations, locShapes, values, nodes };
}

/** An empty object or array (what JSON writes as {} or []). */
function isEmpty(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.length === 0;
  for (const _ in value) return false;
  return Object.getPrototypeOf(value) === Object.prototype;
}

function onlyCmd(n: Pick<NodeDef, 'commands' | 'command'>): boolean {
  return n.commands.length === 1 && n.commands[0]!.field === 'cmd' && n.commands[0]!.text === n.command;
}

/**
 * A memo's locations found again in `source`, a file that says the same as the one it was
 * expanded from (meaningKey), each by its data path. Undefined for a table of another shape.
 */
function relocate(locations: unknown, source: SourceFile): SourceLocation[] | undefined {
  if (!Array.isArray(locations)) return undefined;
  return (locations as SourceLocation[]).map((l) => (l?.at && Array.isArray(l.at.path) ? source.locate(l.at.path, { key: l.at.key === true }) : l));
}

/**
 * A memo's locations found again in an edited file (see expandCached): for the file whose
 * expansion key is `expansionKey`, in place of the table of the memo written for `memoExpansionKey`.
 */
interface Relocation {
  expansionKey: string;
  memoExpansionKey: string;
  locations: SourceLocation[];
}

function readRelocation(path: string): Relocation | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Relocation;
    return typeof r?.expansionKey === 'string' && typeof r.memoExpansionKey === 'string' && Array.isArray(r.locations) ? r : undefined;
  } catch {
    return undefined;
  }
}

function writeRelocation(path: string, r: Relocation): void {
  try {
    writeFileAtomic(path, JSON.stringify(r), { durable: false });
  } catch {
    // a read-only cache still runs; it only parses the file next time
  }
}

/**
 * The expansion a memo holds; anything of another shape is returned as it is (and then not used).
 * `relocated`: its locations found again in the file it is used for (relocate).
 */
function fromMemo(m: unknown, relocated?: SourceLocation[]): unknown {
  const memo = m as Memo;
  if (typeof m !== 'object' || m === null || !Array.isArray(memo.locations) || !Array.isArray(memo.locShapes) || !Array.isArray(memo.nodes)) return m;
  if (relocated && relocated.length !== memo.locations.length) return undefined;
  const locations = relocated ?? memo.locations;
  const loc = (i: unknown): SourceLocation | undefined => (typeof i === 'number' ? locations[i] : undefined);
  // Each shape decoded once and shared by its nodes (nothing writes a node's loc).
  const shapes: NodeDef['loc'][] = [];
  for (const sh of memo.locShapes as unknown[]) {
    const l = sh as LocShape;
    if (typeof sh !== 'object' || sh === null || !Array.isArray(l.deps) || !Array.isArray(l.commands) || typeof l.outs !== 'object' || l.outs === null) return undefined;
    const stage = loc(l.stage);
    const deps = l.deps.map(loc);
    const commands = l.commands.map(loc);
    const outs = Object.entries(l.outs).map(([o, i]) => [o, loc(i)] as const);
    if (!stage || deps.some((d) => !d) || commands.some((d) => !d) || outs.some(([, x]) => !x)) return undefined;
    shapes.push({ stage, deps: deps as SourceLocation[], outs: Object.fromEntries(outs) as Record<string, SourceLocation>, commands: commands as SourceLocation[] });
  }
  if (!Array.isArray(memo.values)) return undefined;
  const values = memo.values.map(deepFreeze);
  // The parsed nodes are this function's own: completed in place, not copied.
  const nodes = memo.nodes as unknown as NodeDef[];
  for (const n of memo.nodes as unknown[]) {
    const node = n as Record<string, unknown> & { loc: unknown; commands?: unknown; command?: unknown };
    if (typeof n !== 'object' || n === null || typeof node.loc !== 'number' || shapes[node.loc] === undefined) return undefined;
    node.loc = shapes[node.loc];
    for (const f of SHARED) {
      const i = node[f];
      if (typeof i !== 'number' || i < 0 || i >= values.length) return undefined;
      node[f] = values[i];
    }
    if (node.commands === undefined) {
      if (typeof node.command !== 'string') return undefined;
      node.commands = [{ field: 'cmd', text: node.command }];
    }
  }
  const { locations: _, locShapes: __, values: ___, ...rest } = memo;
  return { ...rest, nodes };
}

/** Shared by many nodes: a write to one would be a write to all, so none is allowed. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * The keys a memo was written for, read from its first bytes (JSON.stringify keeps the key order
 * of `Expanded`: expansionKey, then meaningKey), without parsing megabytes.
 */
function memoKeys(path: string): { expansionKey?: string; meaningKey?: string } {
  const fd = openSync(path, 'r');
  let head: string;
  try {
    const buf = Buffer.alloc(128);
    head = buf.toString('utf8', 0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
  const m = /^\{"expansionKey":"([0-9a-f]{32})","meaningKey":"([0-9a-f]{32})",/.exec(head);
  return m ? { expansionKey: m[1], meaningKey: m[2] } : {};
}

function isExpanded(m: unknown): m is Expanded {
  const e = m as Expanded;
  return typeof m === 'object' && m !== null && Array.isArray(e.nodes) && typeof e.meaningKey === 'string' && typeof e.name === 'string' && typeof e.members === 'number' && typeof e.instances === 'number' && isOutsideDirs(e.outside) && typeof e.params === 'object' && e.params !== null && typeof e.strict === 'boolean' &&
    e.nodes.every((n) => typeof n === 'object' && n !== null && typeof n.id === 'string' && typeof n.outs === 'object' && n.outs !== null && Array.isArray(n.deps) && Array.isArray(n.refs));
}

export function nodeOrError(project: Project, id: string): NodeDef {
  const n = project.graph.byId.get(id);
  if (!n) {
    const ids = [...project.graph.byId.keys()];
    const close = ids.filter((x) => x.startsWith(id) || x.includes(id)).slice(0, 5);
    throw new UserError({ message: `no node "${id}" in ${project.displayPath}`, hint: close.length ? `did you mean: ${close.join(', ')}` : `nodes: ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}` });
  }
  return n;
}

export function packageDir(): string {
  return dirname(dirname(EMBEDDED_QUICKSTART));
}

/** `--param` values replace the pipeline's: exactly as if the file said so, keys included. */
function overrideParams(raw: RawPipeline, params: Record<string, unknown>, displayPath: string): void {
  const names = Object.keys(raw.params ?? {});
  for (const name of Object.keys(params)) {
    if (names.includes(name)) continue;
    const guess = didYouMean(name, names);
    throw new UserError(`--param ${name}: ${displayPath} has no param "${name}"${guess ? `; did you mean "${guess}"?` : names.length ? ` (it has ${names.join(', ')})` : ''}`);
  }
  if (Object.keys(params).length) raw.params = { ...raw.params, ...params };
}
