import { didYouMean, UserError } from '../diagnostics.js';
import { buildGraph } from '../graph.js';
import type { Project } from '../project.js';

/*
 * `dfwe run NODE|STAGE …` (as `make target`, `dvc repro STAGE`): the project narrowed to the
 * nodes named, every node of a stage named, and everything they need. The rest of the pipeline
 * is not planned, run or reported on.
 */

export function selectTargets(project: Project, targets: readonly string[]): Project {
  if (targets.length === 0) return project;
  const { graph } = project;
  const wanted = new Set<string>();
  const unknown: string[] = [];
  for (const t of targets) {
    if (graph.byId.has(t)) {
      wanted.add(t);
      continue;
    }
    const ofStage = project.nodes.filter((n) => n.stage === t);
    if (ofStage.length === 0) unknown.push(t);
    for (const n of ofStage) wanted.add(n.id);
  }
  if (unknown.length > 0) {
    const stages = [...new Set(project.nodes.map((n) => n.stage))];
    throw new UserError(unknown.map((t) => {
      const guess = didYouMean(t, [...stages, ...graph.byId.keys()]);
      return {
        message: `${project.displayPath} has no stage or node "${t}"${guess ? `; did you mean "${guess}"?` : ''}`,
        hint: guess ? undefined : `its stages: ${stages.slice(0, 12).join(', ')}${stages.length > 12 ? ', …' : ''} (dfwe expand lists the nodes)`,
      };
    }));
  }
  // Everything the targets need: their ancestors, each once.
  const keep = new Set(wanted);
  const stack = [...wanted];
  while (stack.length) {
    for (const u of graph.upstream.get(stack.pop()!)!) {
      if (!keep.has(u)) {
        keep.add(u);
        stack.push(u);
      }
    }
  }
  const nodes = project.nodes.filter((n) => keep.has(n.id));
  return { ...project, nodes, graph: buildGraph(nodes), targets: [...targets] };
}
