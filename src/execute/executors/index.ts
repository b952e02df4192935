import type { JobCanceller } from '../../cache/lease.js';
import { runTagOf, type ExecutorKind } from '../../executor.js';
import { local } from './local.js';
import { slurm } from './slurm.js';

/** Executors by name: one file each in this folder, one line each here. */
export const executors: ReadonlyMap<string, ExecutorKind> = new Map<string, ExecutorKind>([
  [local.name, local],
  [slurm.name, slurm],
]);

/**
 * How a process that breaks dead runs' leases stops what they left running: the job a lease
 * names, by the executor that launched it, and every launch of that run found by its tag (those
 * whose handles never reached a lease), by the executor the run used, once per dead run.
 */
export function leftoverStopper(kinds: ReadonlyMap<string, ExecutorKind> = executors): JobCanceller {
  const swept = new Set<string>();
  return (holder) => {
    if (holder.job) kinds.get(holder.job.executor)?.cancel(holder.job, holder.host);
    const tag = runTagOf(holder);
    // A holder that launches nothing (gc, pin, pull) names no executor.
    const kind = holder.executor === undefined ? undefined : kinds.get(holder.executor);
    if (tag === undefined || kind === undefined || swept.has(`${tag}@${holder.host}`)) return;
    swept.add(`${tag}@${holder.host}`);
    kind.stopRun(tag, holder.host);
  };
}
