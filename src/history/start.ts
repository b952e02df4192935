import { localHost } from '../cache/records.js';
import type { CacheStore } from '../cache/store.js';
import type { Project } from '../project.js';
import { processStart } from '../util/process.js';
import { gitState } from './git.js';
import { relative } from 'node:path';
import { keyOf } from '../util/hash.js';
import { dict } from '../util/dict.js';
import { RunLog, type StartLine } from './run-log.js';

/* A run's history file begun: what its start line says, for a full run and for a no-op alike. */

export interface RunMeta {
  command: 'run' | 'watch';
  executor: string;
  jobs: number;
}

/** What a history's start line says of the pipeline. */
export type RunSubject = Pick<StartLine, 'workspace' | 'pipeline' | 'name' | 'pipelineDigest' | 'variantKey' | 'params' | 'overrides' | 'only' | 'nodes' | 'sourcesDigest' | 'sources'>;

/** Source files listed one by one in the history up to this many; beyond, their digest only. */
const LISTED_SOURCES = 200;

/** `sources`: each source the plan read (by absolute path, as checkInputs found them) and its digest. */
export function subjectOf(project: Project, sources?: ReadonlyMap<string, string>): RunSubject {
  const subject: RunSubject = {
    workspace: project.workspace, pipeline: project.displayPath, name: project.name, pipelineDigest: project.pipelineDigest, variantKey: project.variantKey,
    params: project.params, overrides: project.overrides, only: project.only, nodes: (project.part?.order ?? project.graph.order).length,
  };
  if (sources) {
    const files = [...sources].map(([abs, d]): [string, string] => [relative(project.workspace, abs) || '.', d]).sort(([a], [b]) => (a < b ? -1 : 1));
    subject.sourcesDigest = keyOf(files);
    if (files.length <= LISTED_SOURCES) subject.sources = dict(files);
  }
  return subject;
}

/** The history file of a run starting now; undefined when the cache takes none. */
export async function startHistory(store: CacheStore, subject: RunSubject, meta: RunMeta): Promise<RunLog | undefined> {
  store.claim();
  const git = await gitState(subject.workspace);
  return RunLog.open(store, { ...meta, ...subject, pid: process.pid, pidStart: processStart(process.pid), host: localHost(), git });
}
