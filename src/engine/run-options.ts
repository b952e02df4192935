import { existsSync, readdirSync } from 'node:fs';
import { UserError } from '../diagnostics.js';
import type { ExecutorKind } from '../executor.js';
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
  /** The shared cache (see cache/remote-session.ts). */
  remote?: string;
  remoteReadonly?: boolean;
  push?: boolean;
}

/** The executor a run uses: --executor, else the pipeline's, else local. */
export function executorChoice(executors: ReadonlyMap<string, ExecutorKind>, flag: string | undefined, pipeline: string | undefined): ExecutorKind {
  const name = flag ?? pipeline ?? 'local';
  const kind = executors.get(name);
  if (!kind) throw new UserError(`--executor must be ${[...executors.keys()].join(' or ')}, not "${name}"`);
  return kind;
}

/**
 * The GPUs visible to this machine, as CUDA names them: the entries of CUDA_VISIBLE_DEVICES
 * (indices, UUIDs or MIG ids) when it is set, else the index of each NVIDIA device node.
 */
export function visibleGpus(): string[] {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) {
    // CUDA stops at the first invalid entry; -1 is the usual way to hide every device.
    const ids: string[] = [];
    for (const s of visible.split(',').map((x) => x.trim())) {
      if (s === '' || s === '-1') break;
      ids.push(s);
    }
    return ids;
  }
  if (!existsSync('/dev')) return [];
  return readdirSync('/dev').flatMap((d) => /^nvidia(\d+)$/.exec(d)?.[1] ?? []).sort((a, b) => Number(a) - Number(b));
}

export function detectGpus(): number {
  return visibleGpus().length;
}

/**
 * The device of each gpu token: token i is visible GPU i, cycling when more tokens than GPUs are
 * asked for (`--resource gpu=8` on 4 GPUs: two stages per GPU); plain indices when none is seen.
 */
export function gpuDevices(tokens: number, visible: readonly string[] = visibleGpus()): string[] {
  return Array.from({ length: tokens }, (_, i) => (visible.length ? visible[i % visible.length]! : String(i)));
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
export function runCapacity(kind: ExecutorKind, opts: RunOptions): { jobs: number; capacity?: Record<string, number>; gpus?: string[] } {
  const jobs = opts.jobs !== undefined ? positiveInt(opts.jobs, '--jobs') : kind.defaultJobs ?? defaultJobs();
  if (kind.allocatesResources) return { jobs };
  const resources = parseResources(opts.resource);
  const visible = visibleGpus();
  const capacity = { cpu: jobs, gpu: visible.length, ...resources };
  return { jobs, capacity, gpus: gpuDevices(capacity.gpu, visible) };
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
