import { UserError } from '../diagnostics.js';
import { open, type GlobalOptions } from './common.js';

export async function dagCommand(pipeline: string | undefined, opts: { format?: string }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  const { graph } = project;
  const format = opts.format ?? 'text';
  const edges: [string, string][] = [];
  for (const n of graph.order) for (const u of graph.upstream.get(n.id)!) edges.push([u, n.id]);
  let text: string;
  if (format === 'text') {
    text = graph.order
      .map((n) => {
        const ups = graph.upstream.get(n.id)!;
        return `${n.id}${ups.length ? `  ← ${ups.join(', ')}` : ''}`;
      })
      .join('\n');
  } else if (format === 'dot') {
    const q = (s: string): string => JSON.stringify(s);
    text = ['digraph dfwe {', '  rankdir=LR;', ...graph.order.map((n) => `  ${q(n.id)} [shape=box];`), ...edges.map(([a, b]) => `  ${q(a)} -> ${q(b)};`), '}'].join('\n');
  } else if (format === 'mermaid') {
    const ids = new Map(graph.order.map((n, i) => [n.id, `n${i}`]));
    const label = (s: string): string => `["${s.replace(/"/g, '#quot;')}"]`;
    text = ['flowchart LR', ...graph.order.map((n) => `  ${ids.get(n.id)}${label(n.id)}`), ...edges.map(([a, b]) => `  ${ids.get(a)} --> ${ids.get(b)}`)].join('\n');
  } else throw new UserError(`--format takes text, dot or mermaid, not "${format}"`);
  process.stdout.write(text + '\n');
  return 0;
}
