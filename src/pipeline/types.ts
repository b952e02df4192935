import type { SourceLocation } from '../diagnostics.js';
import type { ExecutorKind } from '../executor.js';

/*
 * What a pipeline is, before and after expansion: the YAML's shape as validated (RawPipeline,
 * RawStage) and the nodes expansion makes of it (NodeDef). Every layer above the pipeline reads
 * NodeDef; only src/pipeline/ reads the raw shapes.
 */

/** One node of the graph, fully resolved: no expressions left, paths normalised. */
export interface NodeDef {
  /** `stage` alone, or `stage[var=value,…]` with the variables the node depends on. */
  id: string;
  /** The stage name in the pipeline file. */
  stage: string;
  /** Sweep and foreach variables this node depends on, with their (canonical) values. */
  vars: Record<string, unknown>;
  /** How many sweep members need this node (a shared node runs once for all of them). */
  members: number;
  /** 'cmd' for shell commands, else the built-in stage type. */
  type: string;
  version: number;
  command?: string;
  /** A built-in stage's resolved `with` (defaults filled in); empty for a command. */
  params: Record<string, unknown>;
  /** Values of the pipeline `params` this stage reads (only those), so `why` can name them. */
  pipelineParams: Record<string, unknown>;
  env: Record<string, string>;
  deps: string[];
  outs: Record<string, string>;
  /** The outputs that are metrics files (JSON of numbers): their numbers become the node's metrics. */
  metricsFiles: string[];
  outKinds: Record<string, 'file' | 'dir' | 'any'>;
  resources: Record<string, number>;
  /** Each executor's settings for this node (under its name: the pipeline's, then the stage's). Not part of the key. */
  executorOptions: Record<string, Record<string, unknown>>;
  /** Upstream node ids named in expressions. */
  refs: string[];
  /**
   * The outputs of each referenced node that expressions read: the node's key covers only
   * these, so an upstream output it never reads (a log, timings) cannot make it rerun.
   */
  refOuts: Record<string, string[]>;
  mlRuntime: boolean;
  /** The shell commands it runs (a command stage's cmd, a search's scorer), for the check of what they name but the node does not declare. */
  commands: { field: string; text: string }[];
  loc: { stage: SourceLocation; deps: SourceLocation[]; outs: Record<string, SourceLocation>; commands: SourceLocation[] };
}

export interface RawStage {
  cmd?: string;
  uses?: string;
  with?: Record<string, unknown>;
  foreach?: Record<string, unknown>;
  deps?: string[];
  outs?: Record<string, string | null>;
  /** Outputs that are metrics files, NAME: PATH as in outs. */
  metrics?: Record<string, string | null>;
  env?: Record<string, string | number | boolean>;
  resources?: Record<string, number | string>;
  /** An executor's settings, under its name. */
  [executor: string]: unknown;
}

/** What `dfwe metrics` and the report compare (the pipeline's `report` section). */
export interface ReportSpec {
  baseline: string;
  method: string;
  /** The metric compared (default `score`): a node's TASK.score per task, or its bare score. */
  score?: string;
  /** The variable whose value names the task of a bare score. */
  task?: string;
}

export interface RawPipeline {
  version: 1;
  name?: string;
  params?: Record<string, unknown>;
  sweep?: Record<string, unknown>;
  runtime?: { backend?: string };
  report?: ReportSpec;
  /** A file a command names but its stage does not declare is an error, not a warning. */
  strict?: boolean;
  executor?: string;
  /** The shared cache's URL (s3://…). */
  remote?: string;
  allow_outside?: string[];
  /** Directories outside the workspace that stages may read, never write. */
  read_only?: string[];
  stages: Record<string, RawStage>;
  /** An executor's settings, under its name. */
  [executor: string]: unknown;
}

export interface ExpandOptions {
  /** Keep only sweep members whose variable shows one of these values (`--only target=emotion`, repeatable). */
  only?: Record<string, string[]>;
  /** The executors whose settings (under their names) nodes carry. */
  executors?: ReadonlyMap<string, ExecutorKind>;
}

/**
 * More stage instances than this is a sweep gone wrong (two variables of a thousand values each),
 * not an experiment: an error, said at once, rather than minutes of work and then out of memory.
 */
export interface Expansion {
  nodes: NodeDef[];
  /** Sweep members expanded (1 without a sweep). */
  members: number;
  /** Stage instances before identical ones were merged. */
  instances: number;
  /** The read_only directories, their expressions evaluated. */
  readOnly: string[];
}
