import { existsSync, readdirSync } from 'node:fs';
import { UserError } from '../diagnostics.js';
import type { ExecutorKind } from '../execute/executor.js';
import { defaultJobs } from '../project.js';

/*
 * A run's options as the user gives them, and their checks: light, so that a no-op run checks
 * them without loading the engine.
 */

export interface RunOptions {
  jobs?: string;
  dryRun?: boolean;
  force?: string[];
  keepGoing?: boolean;
  resource?: string[];
  verbose?: boolean;
  executor?: string;
}

/** The executor a run uses: --executor, else the pipeline's, else local. */
export function executorChoice(executors: ReadonlyMap<string, ExecutorKind>, flag: string | undefined, pipeline: string | undefined): ExecutorKind {
  const name = flag ?? pipeline ?? 'local';
  const kind = executors.get(name);
  if (!kind) throw new UserError(`--executor must be ${[...executors.keys()].join(' or ')}, not "${name}"`);
  return kind;
}

/** GPUs visible to this machine: NVIDIA device nodes, unless CUDA_VISIBLE_DEVICES narrows them. */
export function detectGpus(): number {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) return visible.trim() === '' ? 0 : visible.split(',').filter((s) => s.trim() !== '' && s.trim() !== '-1').length;
  if (!existsSync('/dev')) return 0;
  return readdirSync('/dev').filter((d) => /^nvidia\d+$/.test(d)).length;
}

export function parseResources(specs: string[] = []): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of specs) {
    const m = /^([A-Za-z_][\w-]*)=(\d+)$/.exec(s);
    if (!m) throw new UserError(`--resource takes NAME=N (e.g. gpu=2), not "${s}"`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/**
 * --jobs (default: the executor's, else the cores) and the capacity of each resource token,
 * undefined when the executor's cluster allocates them itself.
 */
export function runCapacity(kind: ExecutorKind, opts: RunOptions): { jobs: number; capacity?: Record<string, number> } {
  const jobs = opts.jobs !== undefined ? positiveInt(opts.jobs, '--jobs') : kind.defaultJobs ?? defaultJobs();
  const resources = parseResources(opts.resource);
  return { jobs, capacity: kind.allocatesResources ? undefined : { cpu: jobs, gpu: detectGpus(), ...resources } };
}

export function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} takes a whole number ≥ 1, not "${value}"`);
  return n;
}

/** Said by a run with nothing to do in a cache it cannot write. */
export function readOnlyNote(cacheRoot: string): string {
  return `dfwe: the cache ${cacheRoot} is read-only; every result is already in place, so nothing needed writing`;
}
