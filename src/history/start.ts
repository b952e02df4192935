import { localHost } from '../cache/records.js';
import type { CacheStore } from '../cache/store.js';
import type { Project } from '../project.js';
import { processStart } from '../util/process.js';
import { gitState } from './git.js';
import { RunLog, type StartLine } from './run-log.js';

/* A run's history file begun: what its start line says, for a full run and for a no-op alike. */

export interface RunMeta {
  command: 'run' | 'watch';
  executor: string;
  jobs: number;
}

/** What a history's start line says of the pipeline. */
export type RunSubject = Pick<StartLine, 'workspace' | 'pipeline' | 'name' | 'pipelineDigest' | 'variantKey' | 'params' | 'overrides' | 'only' | 'nodes'>;

export function subjectOf(project: Project): RunSubject {
  return {
    workspace: project.workspace, pipeline: project.displayPath, name: project.name, pipelineDigest: project.pipelineDigest, variantKey: project.variantKey,
    params: project.params, overrides: project.overrides, only: project.only, nodes: project.graph.order.length,
  };
}

/** The history file of a run starting now; undefined when the cache takes none. */
export async function startHistory(store: CacheStore, subject: RunSubject, meta: RunMeta): Promise<RunLog | undefined> {
  store.claim();
  const git = await gitState(subject.workspace);
  return RunLog.open(store, { ...meta, ...subject, pid: process.pid, pidStart: processStart(process.pid), host: localHost(), git });
}
