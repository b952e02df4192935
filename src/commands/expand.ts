import { open, type GlobalOptions } from './common.js';
import { maxOf } from '../util/arrays.js';

export function expansionSummary(p: { members: number; instances: number; nodes: number }): string {
  const shared = p.instances - p.nodes;
  return `${p.members} member${p.members === 1 ? '' : 's'}, ${p.instances} stage instances → ${p.nodes} nodes (${shared} shared)`;
}

export async function expandCommand(pipeline: string | undefined, opts: { json?: boolean }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  const { graph } = project;
  if (opts.json) {
    process.stdout.write(JSON.stringify({
      pipeline: project.displayPath, members: project.members, instances: project.instances,
      nodes: graph.order.map((n) => ({
        id: n.id, stage: n.stage, type: n.type, vars: n.vars, members: n.members,
        // What it runs: the command, or the built-in stage's `with` with its defaults filled in.
        ...(n.type === 'cmd' ? { command: n.command } : { with: n.params }),
        outs: n.outs,
        // What a cluster job for the node would ask for, to check before submitting.
        ...(Object.keys(n.resources).length ? { resources: n.resources } : {}),
        ...Object.fromEntries(Object.entries(n.executorOptions).filter(([, o]) => Object.keys(o).length > 0)),
      })),
    }, null, 2) + '\n');
    return 0;
  }
  const byStage = new Map<string, number>();
  for (const n of graph.order) byStage.set(n.stage, (byStage.get(n.stage) ?? 0) + 1);
  const lines = [`${project.name} (${project.displayPath}): ${expansionSummary({ ...project, nodes: project.nodes.length })}`];
  lines.push(`  per stage: ${[...byStage].map(([s, c]) => `${s} ${c}`).join(', ')}`);
  const width = Math.min(60, maxOf(graph.order.map((n) => n.id.length)));
  for (const n of graph.order) lines.push(`  ${n.id.padEnd(width)}  ${n.members > 1 ? `shared by ${n.members} members` : ''}`.trimEnd());
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
