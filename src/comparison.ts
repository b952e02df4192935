import type { Project } from './project.js';
import type { NodeDef, ReportSpec } from './pipeline/types.js';
import { showValue } from './pipeline/naming.js';

/*
 * The comparison the paper's Table 2 makes: per task, the baseline's test score, the method's,
 * and the delta. Each method node is paired with the baseline node that agrees with it on their
 * shared variables. In a sweep a task has several method nodes (one per source set): the table
 * gives the best and the mean delta, and `--json` every pair. The run history records these
 * pairs and the report draws them, so they sit below both.
 */

export interface Pair {
  task: string;
  method: string;
  baseline?: string;
  vars: Record<string, unknown>;
  methodScore?: number;
  baselineScore?: number;
  delta?: number;
}

export interface TaskRow {
  task: string;
  baseline?: number;
  /** The best method score over the task's pairs (the only one without a sweep). */
  method?: number;
  delta?: number;
  meanDelta?: number;
  pairs: number;
}

/**
 * The tasks a node scores, each with its score once the node has run: its metrics TASK.SCORE
 * (the built-in evaluate's, or a metrics file's `{"TASK": {"score": …}}`), and a bare SCORE for
 * the task its `report.task` variable names (or `all`). A built-in stage's `tasks` are known
 * before it runs; a command's, once it has.
 */
export function scoresOf(node: NodeDef, metrics: Record<string, number> | undefined, spec: ReportSpec): Map<string, number | undefined> {
  const key = spec.score ?? 'score';
  const out = new Map<string, number | undefined>();
  if (node.type !== 'cmd' && Array.isArray(node.params.tasks)) for (const t of node.params.tasks) out.set(String(t), undefined);
  const bare = spec.task !== undefined && Object.hasOwn(node.vars, spec.task) ? showValue(node.vars[spec.task]) : 'all';
  if (metrics) {
    for (const [k, v] of Object.entries(metrics)) if (k.endsWith(`.${key}`) && k.length > key.length + 1) out.set(k.slice(0, -key.length - 1), v);
    if (Object.hasOwn(metrics, key)) out.set(bare, metrics[key]);
  }
  if (out.size === 0) out.set(bare, undefined);
  return out;
}

/** The pairs, with each node's metrics as `metricsOf` gives them (a run's served results, say). */
export function pairsFrom(project: Project, metricsOf: (id: string) => Record<string, number> | undefined): Pair[] {
  const spec = project.report!;
  const nodes = project.graph.order;
  const baselines = nodes.filter((n) => n.stage === spec.baseline).map((b) => ({ node: b, scores: scoresOf(b, metricsOf(b.id), spec) }));
  const agree = (a: NodeDef, b: NodeDef): boolean => Object.keys(a.vars).every((k) => !Object.hasOwn(b.vars, k) || JSON.stringify(a.vars[k]) === JSON.stringify(b.vars[k]));
  const pairs: Pair[] = [];
  for (const m of nodes) {
    if (m.stage !== spec.method) continue;
    for (const [task, methodScore] of scoresOf(m, metricsOf(m.id), spec)) {
      const b = baselines.find((x) => agree(x.node, m) && x.scores.has(task));
      const baselineScore = b?.scores.get(task);
      pairs.push({
        task, method: m.id, baseline: b?.node.id, vars: m.vars, methodScore, baselineScore,
        delta: methodScore !== undefined && baselineScore !== undefined ? methodScore - baselineScore : undefined,
      });
    }
  }
  return pairs;
}

export function taskRows(pairs: Pair[]): TaskRow[] {
  const byTask = new Map<string, Pair[]>();
  for (const p of pairs) byTask.set(p.task, [...(byTask.get(p.task) ?? []), p]);
  return [...byTask].map(([task, ps]) => {
    const done = ps.filter((p) => p.delta !== undefined);
    const best = done.reduce<Pair | undefined>((a, p) => (!a || p.methodScore! > a.methodScore! ? p : a), undefined);
    return {
      task,
      baseline: ps.find((p) => p.baselineScore !== undefined)?.baselineScore,
      method: best?.methodScore,
      delta: best?.delta,
      meanDelta: done.length ? done.reduce((a, p) => a + p.delta!, 0) / done.length : undefined,
      pairs: ps.length,
    };
  });
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The table's average row over the tasks that ran: baseline, method, (best) delta and mean delta; undefined before any ran. */
export function averageRow(rows: TaskRow[]): { tasks: number; baseline: number; method: number; delta: number; meanDelta: number } | undefined {
  const done = rows.filter((r) => r.delta !== undefined);
  if (done.length === 0) return undefined;
  return { tasks: done.length, baseline: mean(done.map((r) => r.baseline!)), method: mean(done.map((r) => r.method!)), delta: mean(done.map((r) => r.delta!)), meanDelta: mean(done.map((r) => r.meanDelta!)) };
}

/** The table's average delta: the mean over tasks of each task's (best) delta; undefined before any ran. */
export function averageDelta(rows: TaskRow[]): number | undefined {
  return averageRow(rows)?.delta;
}

/** A delta with its sign, two decimals; a dash for none. */
export function signed(x: number | undefined): string {
  return x === undefined ? '—' : `${x > 0 ? '+' : ''}${x.toFixed(2)}`;
}

const f = (x: number | undefined, sign = false): string => (sign ? signed(x) : x === undefined ? '—' : x.toFixed(2));

export function formatTable(rows: TaskRow[], methodName = 'DFWE'): string {
  const sweep = rows.some((r) => r.pairs > 1);
  const head = sweep ? ['task', 'baseline', `${methodName} (best)`, 'delta (best)', 'delta (mean)', 'source sets'] : ['task', 'baseline', methodName, 'delta'];
  const body = rows.map((r) => (sweep ? [r.task, f(r.baseline), f(r.method), f(r.delta, true), f(r.meanDelta, true), String(r.pairs)] : [r.task, f(r.baseline), f(r.method), f(r.delta, true)]));
  const avg = averageRow(rows);
  if (rows.length > 1 && avg) {
    const line = ['average', f(avg.baseline), f(avg.method), f(avg.delta, true)];
    body.push(sweep ? [...line, f(avg.meanDelta, true), ''] : line);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const row = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [row(head), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...body.map(row)].join('\n');
}
