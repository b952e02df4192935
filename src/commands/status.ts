import { planAll, type Decision } from '../plan.js';
import type { Project } from '../project.js';
import { open, type GlobalOptions } from './common.js';
import { expansionSummary } from './expand.js';

export async function statusCommand(pipeline: string | undefined, opts: { json?: boolean }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  const decisions = planAll(project);
  project.saveState();
  printStatus(project, decisions, opts.json ?? false);
  return 0;
}

export function printStatus(project: Project, decisions: Decision[], json: boolean): void {
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
  const width = Math.min(40, Math.max(...decisions.map((d) => d.id.length)));
  for (const d of decisions) {
    const state = d.state === 'run' ? 'will run' : d.state;
    lines.push(`  ${state.padEnd(9)} ${d.id.padEnd(width)}  ${d.state === 'cached' && !d.restore ? '' : d.reason}`.trimEnd());
  }
  process.stdout.write(lines.join('\n') + '\n');
}
