import type { Decision } from '../engine/plan.js';
import { plan } from '../engine/planner.js';
import { nodeOrError } from '../project.js';
import { open, type GlobalOptions } from './common.js';

export async function whyCommand(id: string, pipeline: string | undefined, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  nodeOrError(project, id);
  const decisions = new Map(plan(project).decisions.map((d) => [d.id, d]));
  project.saveState();
  const out: string[] = [];
  const explained = new Set<string>();
  const explain = (d: Decision, depth: number): void => {
    const pad = '  '.repeat(depth);
    if (explained.has(d.id)) {
      out.push(`${pad}${d.id} will run (see above)`);
      return;
    }
    explained.add(d.id);
    if (d.state === 'cached') {
      const r = d.record!;
      out.push(`${pad}${d.id} is cached: nothing it depends on changed since it ran at ${r.startedAt} (key ${d.execKey!.slice(0, 12)})${d.restore ? '; its workspace outputs will be restored' : ''}`);
      return;
    }
    out.push(`${pad}${d.id} will run: ${d.reason}`);
    for (const c of d.changes ?? []) {
      out.push(`${pad}  - ${c.what}`);
      if (c.before !== undefined || c.after !== undefined) {
        out.push(`${pad}      before: ${c.before ?? '(absent)'}`);
        out.push(`${pad}      now:    ${c.after ?? '(absent)'}`);
      }
    }
    if (d.execKey === undefined) {
      for (const u of project.graph.upstream.get(d.id)!) {
        const ud = decisions.get(u)!;
        if (ud.state !== 'cached') explain(ud, depth + 1);
      }
    }
  };
  explain(decisions.get(id)!, 0);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
