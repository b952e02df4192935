import { plan } from '../engine/planner.js';
import { comparePairs } from '../report/metrics-table.js';
import { formatTable, taskRows } from '../comparison.js';
import { didYouMean, UserError } from '../diagnostics.js';
import { open, type GlobalOptions } from './common.js';
import { maxOf } from '../util/arrays.js';

export async function metricsCommand(pipeline: string | undefined, opts: { json?: boolean; stage?: string }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  if (opts.stage !== undefined) return stageMetrics(project, opts.stage, opts.json ?? false);
  if (!project.report) {
    throw new UserError(`${project.displayPath} has no "report" section: say which stages to compare (evaluate stages, or stages with metrics files), e.g. report: { baseline: test_baseline, method: test_dfwe }, or list one stage's metrics with --stage NAME`);
  }
  const pairs = comparePairs(project);
  const rows = taskRows(pairs);
  if (opts.json) {
    process.stdout.write(JSON.stringify({ pipeline: project.displayPath, tasks: rows, pairs }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(formatTable(rows) + '\n');
  const missing = pairs.filter((p) => p.delta === undefined).length;
  if (missing) process.stdout.write(`(${missing} of ${pairs.length} comparisons not run yet: dfwe run)\n`);
  return 0;
}

/** Every node of one stage with the metrics its last successful run reported (a dev sweep's table). */
function stageMetrics(project: Awaited<ReturnType<typeof open>>, stage: string, json: boolean): number {
  const nodes = project.graph.order.filter((n) => n.stage === stage);
  if (nodes.length === 0) {
    const stages = [...new Set(project.graph.order.map((n) => n.stage))];
    const guess = didYouMean(stage, stages);
    throw new UserError(`${project.displayPath} has no stage "${stage}"${guess ? `; did you mean "${guess}"?` : ''}`);
  }
  const decisions = new Map(plan(project).decisions.map((d) => [d.id, d]));
  const rows = nodes.map((n) => {
    const cached = decisions.get(n.id)?.state === 'cached';
    return { id: n.id, vars: n.vars, state: cached ? 'cached' : 'not run', metrics: cached ? decisions.get(n.id)?.record?.metrics : undefined };
  });
  if (json) {
    process.stdout.write(JSON.stringify({ pipeline: project.displayPath, stage, nodes: rows }, null, 2) + '\n');
    return 0;
  }
  const varNames = [...new Set(rows.flatMap((r) => Object.keys(r.vars)))];
  const metricNames = [...new Set(rows.flatMap((r) => Object.keys(r.metrics ?? {})))];
  const show = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'number' ? String(Number.isInteger(v) ? v : +v.toFixed(4)) : Array.isArray(v) ? v.join('+') : String(v));
  // A metric named like a variable (a sweep over `epochs`, a stage reporting the epochs it ran) is told apart.
  const header = [...varNames, ...metricNames.map((m) => (varNames.includes(m) ? `${m} (reported)` : m))];
  // A node that ran but reports no metrics (a cmd stage) is not one that has not run.
  const table = [header, ...rows.map((r) => [...varNames.map((v) => show(r.vars[v])), ...(r.metrics ? metricNames.map((m) => show(r.metrics![m])) : [r.state === 'cached' ? '(ran; no metrics)' : '(not run)'])])];
  if (varNames.length === 0) table.forEach((row, i) => row.unshift(i === 0 ? 'node' : rows[i - 1]!.id));
  const widths = table[0]!.map((_, c) => maxOf(table.map((row) => (row[c] ?? '').length)));
  process.stdout.write(table.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n');
  return 0;
}
