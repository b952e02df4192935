import { existsSync, realpathSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CacheStore } from './cache/store.js';
import { UserError } from './diagnostics.js';
import { buildGraph, type Graph } from './graph.js';
import { EXPANSION_FORMAT, expandCached, readMemoPart, type Expanded } from './expansion-memo.js';
import { FileDigests } from './keys/file-digests.js';
import type { NodeDef, ReportSpec } from './pipeline/types.js';
import type { LoadedPipeline } from './pipeline/load.js';
import { readPipelineText } from './pipeline/read.js';
import { digestBytes, keyOf } from './util/hash.js';
import { DFWE_VERSION } from './version.js';
import { chooseBackend, runtimeIdentity } from './ml/runtime.js';
import { Bounds, type OutsideDirs } from './workspace-bounds.js';
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
  /**
   * Opened for a run told from the snapshot (openPart): the graph holds only the nodes it may
   * execute and those it says something of, and the outputs of those they read. `order` is every
   * node of the pipeline; `node` decodes any of them when asked.
   */
  part?: { order: readonly PartNode[]; node(id: string): NodeDef | undefined };
  /** Persist memos (parsed pipeline, file digests) once planning succeeded: bad input writes nothing. */
  saveState(): void;
}

/** A node of a pipeline opened in part: what its history and snapshot name it by. */
export type PartNode = Pick<NodeDef, 'id' | 'stage'>;

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
  /** The file parsed, once for the command (a UserError, located, where it does not parse). Nothing may change the document. */
  parse(): Promise<LoadedPipeline>;
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
  let parsed: Promise<LoadedPipeline> | undefined;
  const parse = (): Promise<LoadedPipeline> => (parsed ??= import('./pipeline/load.js').then(({ parsePipeline }) => parsePipeline(text, displayPath)));
  const meaning = async (): Promise<string | undefined> => {
    try {
      return meaningOf((await parse()).data);
    } catch (err) {
      if (err instanceof UserError) return undefined; // said, located, by the full plan
      throw err;
    }
  };
  return { workspace, pipelinePath, displayPath, store, text, pipelineDigest, expansionKey, variantKey, meaning, meaningOf, parse };
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
  const loc = locateProject(opts);
  const expanded = await expandCached(loc.displayPath, loc, opts.stageTypes, opts.executors, opts.only ?? {}, opts.params ?? {});
  // A memo is written only for nodes whose graph was built: their outputs were found not to overlap.
  return projectOf(loc, expanded, buildGraph(expanded.nodes, { outputsChecked: expanded.memoised }), opts, expanded.save);
}

/**
 * Part of a project, for a run told from the snapshot (engine/part-run.ts): only the nodes named
 * are decoded from the expansion memo. Its graph orders `reach` (what the run may execute) and
 * holds `boundary` (nodes it says something of, served as the snapshot had them) as roots with no
 * edges of their own; of `context` (the nodes whose outputs those read) it has only the outputs.
 * `order`: every node of the pipeline, in its graph's order. Undefined where the memo cannot give them.
 */
export async function openPart(loc: ProjectLocation, opts: ProjectOptions, reach: ReadonlySet<string>, boundary: ReadonlySet<string>, context: ReadonlySet<string>, order: readonly PartNode[]): Promise<Project | undefined> {
  const part = await readMemoPart(loc, new Set([...reach, ...boundary]), context);
  if (!part) return undefined;
  const graph = buildGraph(part.nodes, { outputsChecked: true, boundary, context: part.outputs });
  return projectOf(loc, part, graph, opts, part.save, { order, node: part.node });
}

function projectOf(loc: ProjectLocation, expanded: Expanded, graph: Graph, opts: ProjectOptions, save: () => void, part?: Project['part']): Project {
  const { workspace, pipelinePath, displayPath, store, pipelineDigest, expansionKey, variantKey } = loc;
  const { nodes, name, members, instances, backend, report, strict, params, executor, remote, outside, meaningKey } = expanded;
  const runtime = runtimeFor(opts.backend ?? backend);
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
  return { workspace, pipelinePath, displayPath, pipelineDigest, name, nodes, members, instances, graph, store, digests, runtime, backend, expansionKey, variantKey, meaningKey, report, strict, params, overrides: opts.params ?? {}, only: opts.only ?? {}, executor, executors: opts.executors, remote, outside, bounds, part, saveState };
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
