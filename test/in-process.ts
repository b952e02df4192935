import type { Cache } from '../src/cache/cache.js';
import { LeaseManager } from '../src/cache/lease.js';
import { executors } from '../src/execute/executors/index.js';
import { local } from '../src/execute/executors/local.js';
import { localRunner } from '../src/execute/node-runner.js';
import type { Finished, SchedulerEvents } from '../src/execute/runner.js';
import { runGraph, type RunSummary } from '../src/execute/scheduler.js';
import { openProject, type Project } from '../src/project.js';
import { registry } from '../stages/index.js';

/* A real run (leases, processes, the cache) driven in this process, with what each node came to. */

export const openIn = (ws: string): Promise<Project> => openProject({ workspace: ws, stageTypes: registry, executors });

export async function runIn(project: Project, opts: { cache?: Cache; keepGoing?: boolean } = {}): Promise<RunSummary & { outcomes: Map<string, Finished> }> {
  const outcomes = new Map<string, Finished>();
  const events: SchedulerEvents = { started() {}, finished: (id, o) => void outcomes.set(id, o), waiting() {}, progress() {} };
  const signal = new AbortController().signal;
  const leases = new LeaseManager(project.store.locksDir, 'an in-process test run', () => {});
  const executor = await local.connect();
  project.store.claim();
  const runner = localRunner(project, { leases, executor, executorKind: local, force: new Set(), signal, events, streamOutput: false, cache: opts.cache });
  try {
    return { ...(await runGraph(project.graph, runner, { jobs: 1, keepGoing: opts.keepGoing ?? false, signal, events })), outcomes };
  } finally {
    runner.close();
    executor.close();
    leases.close();
  }
}
