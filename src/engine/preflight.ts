import { relative, resolve } from 'node:path';
import { UserError, type Diagnostic } from '../diagnostics.js';
import { capacityFor, type ExecutorKind } from '../executor.js';
import { nodeOrError, type Project } from '../project.js';
import { FsShapeError } from '../util/fs-safe.js';
import { outputDiagnostics, READ_OUTSIDE_HINT } from '../workspace-bounds.js';
import { isOutsideForm } from '../pipeline/paths.js';
import { executorChoice, runCapacity, type RunOptions } from './run-options.js';
import type { SourceDigests } from '../node-keys.js';
import type { NodeDef } from '../pipeline/types.js';

/*
 * Every check of what a user gives a run, made once before anything is written: the run's options
 * (forced ids, the executor, jobs and resources against what each node needs) and the inputs
 * (source deps and outputs against the workspace's bounds). Each failure is a located input
 * error; planning and running may then assume what was checked here.
 */

export interface RunSettings {
  force: Set<string>;
  executorKind: ExecutorKind;
  jobs: number;
  capacity?: Record<string, number>;
  /** The device of each gpu token, when this run assigns them (not on a cluster). */
  gpus?: string[];
}

/** The run's options, checked: every bad value is an input error, with or without -n. */
export function checkRunOptions(project: Project, opts: RunOptions): RunSettings {
  const force = new Set(opts.force ?? []);
  for (const id of force) nodeOrError(project, id);
  const executorKind = executorChoice(project.executors, opts.executor, project.executor);
  // A cluster allocates cpus and GPUs itself; --jobs then bounds the jobs queued at once.
  const { jobs, capacity, gpus } = runCapacity(executorKind, opts);
  if (capacity) checkCapacity(project, capacity, jobs);
  return { force, executorKind, jobs, capacity, gpus };
}

/** Every node's resources fit this run's capacity; else located input errors (nothing written). */
export function checkCapacity(project: Project, capacity: Record<string, number>, jobs: number): void {
  const capacityOf = (r: string): number => capacityFor(capacity, jobs, r);
  const unfit: Diagnostic[] = [];
  for (const n of project.graph.order) {
    for (const [r, amount] of Object.entries(n.resources)) {
      if (amount > capacityOf(r)) {
        unfit.push({
          message: `stage "${n.id}" needs ${r}: ${amount}, but this run has ${capacityOf(r)}`,
          location: n.loc.stage,
          hint: r === 'cpu' ? 'raise --jobs' : r === 'gpu' ? 'no GPU is visible here; run where one is, or set --resource gpu=N' : `set --resource ${r}=N`,
        });
      }
    }
  }
  if (unfit.length > 0) throw new UserError(unfit);
}

/**
 * Source deps that do not exist or cannot be read as they are (a FIFO, a device, a symlink out of
 * the workspace or in a loop), and outputs that a symlink leads out: input errors, reported
 * located before anything runs. `outputs: false` leaves the outputs to a planner that checks
 * each node's before it looks at them (see planAll), or to a snapshot checked since, which
 * vouches for the way to them (engine/run.ts). `nodes`: only theirs (the rest were witnessed
 * unchanged by a checked snapshot; their digests are taken when a key needs them).
 */
export function checkInputs(project: Project, opts: { outputs?: boolean; nodes?: readonly NodeDef[] } = {}): SourceDigests {
  const diagnostics: Diagnostic[] = opts.outputs === false ? [] : outputDiagnostics(project);
  const seen = new Set<string>();
  const found: SourceDigests = new Map();
  const check = (location: Diagnostic['location'], key: string, digest: () => string | undefined, missing: string): void => {
    try {
      const d = found.get(key) ?? digest();
      if (d === undefined) diagnostics.push({ message: missing, location });
      else found.set(key, d);
    } catch (err) {
      if (!(err instanceof FsShapeError)) throw err;
      if (!seen.has(err.message)) diagnostics.push({ message: err.message, location, hint: /outside the workspace/.test(err.message) ? READ_OUTSIDE_HINT : undefined });
      seen.add(err.message);
    }
  };
  for (const node of opts.nodes ?? project.graph.order) {
    const produced = project.graph.producedDeps.get(node.id)!;
    node.deps.forEach((d, i) => {
      if (produced.has(d)) return;
      const what = `dependency "${d}" of stage "${node.stage}"`;
      const abs = resolve(project.workspace, d);
      // Outputs are told by their workspace-relative paths: one named otherwise would be no edge.
      if (isOutsideForm(d) && project.bounds.inWorkspace(abs)) {
        diagnostics.push({ message: `${what} lies in the workspace: name it relative to the workspace (${relative(project.workspace, abs) || '.'})`, location: node.loc.deps[i] });
        return;
      }
      check(node.loc.deps[i], abs, () => project.digests.digest(abs, what), `${what} does not exist and no stage produces it`);
    });
  }
  // Outputs left to the planner (see planAll) are still said together with a source's problem.
  if (diagnostics.length > 0) throw new UserError(opts.outputs === false ? [...outputDiagnostics(project), ...diagnostics] : diagnostics);
  return found;
}


