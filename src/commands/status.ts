import { planAll, type Decision } from '../plan.js';
import type { Project } from '../project.js';
import { open, type GlobalOptions } from './common.js';
import { expansionSummary } from './expand.js';

export async function statusCommand(pipeline: string | undefined, opts: { json?: boolean; all?: boolean }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  const decisions = planAll(project);
  project.saveState();
  printStatus(project, decisions, opts.json ?? false, opts.all ?? false);
  return 0;
}

/** Beyond this many nodes, status prints a line per stage unless --all asks for every node. */
const PER_NODE_LINES = 100;

export function printStatus(project: Project, decisions: Decision[], json: boolean, all = false): void {
  const counts = { cached: 0, run: 0, blocked: 0 };
  for (const d of decisions) counts[d.state]++;
  if (json) {
    process.stdout.write(JSON.stringify({
      pipeline: project.displayPath,
      name: project.name,
      counts,
      sweep: { members: project.members, instances: project.instances, nodes: project.nodes.length },
      nodes: decisions.map((d) => ({ id: d.id, state: d.state, reason: d.reason, planKey: d.planKey, execKey: d.execKey ?? null, restore: d.restore ?? false, changes: d.changes ?? [] })),
    }, null, 2) + '\n');
    return;
  }
  const lines = [`${project.name} (${project.displayPath}): ${decisions.length} nodes: ${counts.cached} cached, ${counts.run} will run${counts.blocked ? `, ${counts.blocked} blocked` : ''}`];
  if (project.members > 1) lines.push(`  sweep: ${expansionSummary(project)}`);
  if (all || decisions.length <= PER_NODE_LINES) {
    const width = Math.min(40, Math.max(...decisions.map((d) => d.id.length)));
    for (const d of decisions) {
      const state = d.state === 'run' ? 'will run' : d.state;
      lines.push(`  ${state.padEnd(9)} ${d.id.padEnd(width)}  ${d.state === 'cached' && !d.restore ? '' : d.reason}`.trimEnd());
    }
  } else lines.push(...stageSummary(project, decisions), `  (${decisions.length} nodes: a line per stage; --all for every node)`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** A line per stage: its nodes by state, and the first node that will run with its reason. */
function stageSummary(project: Project, decisions: Decision[]): string[] {
  const byStage = new Map<string, { nodes: number; cached: number; run: Decision[] }>();
  for (const d of decisions) {
    const stage = project.graph.byId.get(d.id)!.stage;
    const row = byStage.get(stage) ?? byStage.set(stage, { nodes: 0, cached: 0, run: [] }).get(stage)!;
    row.nodes++;
    if (d.state === 'cached' && !d.restore) row.cached++;
    else row.run.push(d);
  }
  const width = Math.max(5, ...[...byStage.keys()].map((s) => s.length));
  const out = [`  ${'stage'.padEnd(width)}  ${'nodes'.padStart(7)}  ${'cached'.padStart(7)}  ${'to do'.padStart(7)}`];
  for (const [stage, r] of byStage) {
    const first = r.run[0];
    const sample = first ? `  ${first.id}: ${first.reason}${r.run.length > 1 ? ` (and ${r.run.length - 1} more)` : ''}` : '';
    out.push(`  ${stage.padEnd(width)}  ${String(r.nodes).padStart(7)}  ${String(r.cached).padStart(7)}  ${String(r.run.length).padStart(7)}${sample}`);
  }
  return out;
}
