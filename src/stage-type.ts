import { UserError } from './diagnostics.js';
import type { FromSchema } from './util/schema-type.js';

/**
 * A built-in stage type is one file under stages/: a light descriptor (its parameter schema,
 * version, outputs, inputs) that planning reads, and a run function that imports the stage's
 * heavy code (training, data loaders, tfjs) when a node runs: planning never loads it. Adding
 * one touches that file and a line in stages/index.ts.
 */

export type OutputKind = 'file' | 'dir';

/** In a stage's schema, where `with` may hold an expression: a `${{ … }}` string: its value is known only after expansion, where it is checked. */
export const EXPRESSION_STRING = { type: 'string', pattern: '^\\s*\\$\\{\\{[\\s\\S]*\\}\\}\\s*$', description: 'a ${{ … }} expression, checked once evaluated' };


export interface StageRunContext<P = Record<string, unknown>> {
  /** The stage's resolved `with`: expressions evaluated, defaults filled in, paths relative to the workspace. */
  params: P;
  /** Absolute path of each declared output; the stage must write every one. */
  outs: Record<string, string>;
  workspace: string;
  /** Resolve a workspace-relative path from params. */
  resolve(path: string): string;
  /** A line for the node's log (also shown as progress on a terminal). */
  log(line: string): void;
  /** A line for the node's log only, not shown as progress (what an evaluator prints as it loads). */
  note(line: string): void;
  /** The ML runtime the engine keyed this node on (backend, tfjs version, Node major). */
  runtime?: Record<string, string>;
  /** An empty directory for scratch files (a search's candidate checkpoints), removed after the node. */
  scratch: string;
  /** A directory kept across attempts of this node's key (nothing else shares it): what a failed attempt finished, the next may reuse. */
  resume: string;
  /** Threads the stage may use: its `cpu` resource when it declares one, else the machine's cores. */
  threads: number;
}

/** A path a stage reads, and where in `with` it is given (for located errors). */
export interface StageInput {
  path: string;
  at: (string | number)[];
}

/** The inputs named by these parameters: a path each, or a list of paths. */
export function pathInputs<P extends object>(params: P, names: readonly (keyof P & string)[]): StageInput[] {
  const out: StageInput[] = [];
  for (const name of names) {
    const v: unknown = params[name];
    if (typeof v === 'string') out.push({ path: v, at: [name] });
    else if (Array.isArray(v)) v.forEach((p, i) => typeof p === 'string' && out.push({ path: p, at: [name, i] }));
  }
  return out;
}

export interface StageResult {
  /** Numbers worth showing in `dfwe show` and reports. */
  metrics?: Record<string, number>;
}

/** A stage type; `P`, the type of its parameters (defineStage derives it from the schema). */
export interface StageType<P = Record<string, unknown>> {
  name: string;
  /** Bump when the stage's results change for the same inputs: it is part of every key. */
  version: number;
  description: string;
  /** JSON Schema of `with`. */
  schema: object;
  /** The outputs this stage writes, by name. */
  outputs(params: P): Record<string, OutputKind>;
  /**
   * Files or directories the stage reads through its parameters (a dataset, a model, the
   * checkpoints to merge): each becomes one of the node's deps, so an upstream output is an edge
   * and any other path is keyed by its content. Relative to the workspace; one outside it must lie
   * in a directory the pipeline lists under `read_only`.
   */
  inputs?(params: P): StageInput[];
  /** Shell commands it runs through its parameters (a scorer), by parameter: files they name must be declared, as a command stage's must. */
  commands?(params: P): { field: string; text: string }[];
  /** True when results depend on the ML runtime (tfjs backend, version): it then joins the key. */
  mlRuntime?: boolean;
  /** True when its metrics score tasks (TASK.score), so a `report` can compare its nodes. */
  reportsMetrics?: boolean;
  /**
   * Fill in what a schema cannot (defaults that depend on another parameter, such as a merge
   * method's own) and check what it cannot (a list as long as another); returns problems as
   * messages. Runs when planning, on the resolved `with`, so what it fills in is keyed.
   */
  complete?(params: P): string[];
  /** Runs in the node's own process. Heavy modules are imported here (`await import`), not at the top of the file. */
  run(ctx: StageRunContext<P>): Promise<StageResult | void>;
}

/**
 * A stage type whose parameters' type is its schema's (util/schema-type.ts): the schema is said
 * once, and `params` in run, inputs, outputs, commands and complete are typed by it.
 */
export function defineStage<const S extends object>(type: StageType<FromSchema<S>> & { schema: S }): StageType {
  // A registry holds stage types of every parameter type; each is called only with what its schema accepted.
  return type as unknown as StageType;
}

/**
 * A stage's input is not what it needs (a task its model has no head for, a model of another
 * vocabulary): the node fails with this message, said as the user's problem, never as a bug.
 */
export class StageInputError extends UserError {
  constructor(message: string) {
    super(message, 1);
  }
}
