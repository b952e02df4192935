import { openPart, type Project, type ProjectLocation, type ProjectOptions } from '../project.js';
import { planPart, type PartPlan } from './planner.js';
import { adoptFindings, memoisedFindings } from './undeclared.js';
import type { SnapshotCheck } from './snapshot.js';

/*
 * A run told from the snapshot. When only sources changed since it was written (the everyday
 * "edit a file, run"), the plan comes from the snapshot alone (planner.ts's planPart), and the run
 * needs only the nodes that plan reaches: those that will run or whose sources changed, and the
 * nodes whose outputs they read. Only those are decoded from the expansion memo and scheduled;
 * every other node is served as the snapshot had it, and so recorded in the history and the
 * snapshot written after. At 20,002 nodes a run of three opened and scheduled every node, which
 * was most of its time.
 */

/**
 * The part of the project a run from this checked snapshot needs, and its plan; undefined where
 * it cannot be told so (the run then opens and plans the whole project): the snapshot has no
 * served set, the plan needs the full one, the part is over three quarters of the pipeline
 * (decoded node by node, a node costs about 1.4 times its share of a whole decode, so that saves
 * little), or the memos it needs are not there.
 */
export async function openPartRun(loc: ProjectLocation, check: SnapshotCheck, opts: ProjectOptions): Promise<{ project: Project; plan: PartPlan } | undefined> {
  const plan = planPart(check, loc);
  const { snap } = check;
  if (!plan || 4 * (plan.reach.length + plan.context.length) > 3 * snap.ids.length) return undefined;
  // The command-file warnings a run says are the whole pipeline's: the nodes they name are
  // decoded too, to locate them.
  const findings = memoisedFindings({ ...loc, meaningKey: snap.meaningKey });
  if (!findings) return undefined;
  const reach = new Set(plan.reach.map((i) => snap.ids[i]!));
  // Of the nodes whose outputs they read, only their outputs; a node a warning names, whole.
  const boundary = new Set(findings.map((f) => f.node).filter((id) => !reach.has(id)));
  const context = new Set(plan.context.map((i) => snap.ids[i]!).filter((id) => !boundary.has(id)));
  const order = snap.ids.map((id, i) => ({ id, stage: snap.stages[snap.stageOf[i]!]! }));
  const project = await openPart(loc, opts, reach, boundary, context, order);
  if (!project || project.meaningKey !== snap.meaningKey) return undefined;
  adoptFindings(project, findings);
  return { project, plan };
}
