import { plan } from '../engine/planner.js';
import { pairsFrom, type Pair } from '../comparison.js';
import type { Project } from '../project.js';

/** The pairs of the pipeline as it stands: each node's metrics from its cached result. */
export function comparePairs(project: Project): Pair[] {
  const decisions = new Map(plan(project).decisions.map((d) => [d.id, d]));
  return pairsFrom(project, (id) => decisions.get(id)?.record?.metrics);
}
