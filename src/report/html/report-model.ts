import { readObject } from '../../cache/objects.js';
import type { Decision } from '../../engine/plan.js';
import { plan } from '../../engine/planner.js';
import { paramRows } from '../../history/diff.js';
import type { Run } from '../../history/runs.js';
import type { Project } from '../../project.js';
import { averageDelta, pairsFrom, taskRows, type Pair, type TaskRow } from '../../comparison.js';
import type { NodeState } from './dag-svg.js';

/*
 * What `dfwe report` shows, gathered from the pipeline as it stands (its plan and cached results)
 * and from the run history (the last run's timeline, the runs compared).
 */

export interface SearchView {
  node: string;
  optimizer?: string;
  /** What each chosen weight weighs: a model as the node that made it (its path where no node did), with its group when the search had several. */
  labels: string[];
  chosenWeights: number[];
  chosenScore: number;
  bestSingle?: number;
  evals: { score: number; source: string }[];
  chosen: number;
}

export interface ComparedRun {
  run: Run;
  label: string;
  rows: TaskRow[];
  averageDelta?: number;
}

export interface ReportModel {
  project: Project;
  decisions: Map<string, Decision>;
  stateOf(id: string): NodeState;
  lastRun?: Run;
  history: Run[];
  pairs?: Pair[];
  rows?: TaskRow[];
  averageDelta?: number;
  searches: SearchView[];
  /** Interpolate nodes beyond those drawn (a sweep has one per source set and target). */
  moreSearches: number;
  compared: ComparedRun[];
}

/** Search charts drawn at most: a sweep's others are named, not drawn. */
const MAX_SEARCH_CHARTS = 24;

/** The report of `project`, given the cache's history (`runs`, oldest first) and the runs to set side by side. */
export function buildModel(project: Project, runs: Run[], compareRefs: Run[]): ReportModel {
  const decisions = new Map(plan(project).decisions.map((d) => [d.id, d]));
  const history = runs.filter((r) => r.start.workspace === project.workspace && r.start.pipeline === project.displayPath);
  const sameVariant = history.filter((r) => r.start.variantKey === project.variantKey);
  const lastRun = (sameVariant.length ? sameVariant : history).at(-1);
  const inLast = new Map((lastRun?.nodes ?? []).map((n) => [n.id, n.state]));
  const stateOf = (id: string): NodeState => {
    const last = inLast.get(id);
    if (decisions.get(id)?.state === 'cached') return last === 'ran' ? 'ran' : 'cached';
    return last === 'failed' ? 'failed' : 'outdated';
  };
  const metricsOf = (id: string): Record<string, number> | undefined => decisions.get(id)?.record?.metrics;
  const pairs = project.report ? pairsFrom(project, metricsOf) : undefined;
  const rows = pairs && taskRows(pairs);

  const searchNodes = project.graph.order.filter((n) => (n.type === 'interpolate' || n.type === 'merge-search') && decisions.get(n.id)?.record?.outputs.search);
  const producer = new Map<string, string>();
  for (const n of project.graph.order) for (const p of Object.values(n.outs)) producer.set(p, n.id);
  const searches: SearchView[] = [];
  for (const n of searchNodes.slice(0, MAX_SEARCH_CHARTS)) {
    const view = searchView(project, n.id, decisions.get(n.id)!, (path) => producer.get(path) ?? path);
    if (view) searches.push(view);
  }
  return {
    project, decisions, stateOf, lastRun, history, pairs, rows, averageDelta: rows && averageDelta(rows), searches,
    moreSearches: Math.max(0, searchNodes.length - MAX_SEARCH_CHARTS), compared: comparedRuns(compareRefs),
  };
}

interface SearchFile {
  optimizer?: string;
  models?: string[];
  groups?: string[];
  alpha?: number[];
  weights?: number[][];
  dev_score?: number;
  score?: number;
  best_single_dev_score?: number;
  best_single_score?: number;
  trace?: { dev_score?: number; score?: number; source?: string; alpha?: number[]; weights?: number[][] }[];
}

/** Per weight, its model, and its group when weights are per group (groups × models, flattened). */
function weightLabels(s: SearchFile, madeBy: (path: string) => string): string[] {
  const models = Array.isArray(s.models) ? s.models.map((m) => madeBy(String(m))) : [];
  if (!Array.isArray(s.weights) || s.weights.length < 2 || !Array.isArray(s.groups)) return models;
  return s.groups.flatMap((g) => models.map((m) => `${String(g)}: ${m}`));
}

/** An interpolate (or merge-search) node's search, from its cached `search` output. */
function searchView(project: Project, id: string, d: Decision, madeBy: (path: string) => string): SearchView | undefined {
  const entry = d.record!.outputs.search!;
  if (entry.kind !== 'file') return undefined;
  let s: SearchFile;
  try {
    s = JSON.parse(readObject(project.store, entry.digest).toString('utf8')) as SearchFile;
  } catch {
    return undefined;
  }
  if (!Array.isArray(s.trace)) return undefined;
  const evals = s.trace.map((t) => ({ score: Number(t.dev_score ?? t.score), source: String(t.source ?? '') }));
  const chosenWeights = s.alpha ?? s.weights?.flat() ?? [];
  const key = JSON.stringify(s.alpha ?? s.weights);
  let chosen = s.trace.findIndex((t) => JSON.stringify(t.alpha ?? t.weights) === key);
  if (chosen < 0) chosen = evals.reduce((b, e, i) => (e.score > evals[b]!.score ? i : b), 0);
  return {
    node: id, optimizer: s.optimizer, labels: weightLabels(s, madeBy), chosenWeights, chosenScore: Number(s.dev_score ?? s.score),
    bestSingle: s.best_single_dev_score ?? s.best_single_score, evals, chosen,
  };
}

/** Runs side by side: each labelled by the params it differs in from the others (seed=1, …). */
function comparedRuns(runs: Run[]): ComparedRun[] {
  const varying = new Set<string>();
  for (const a of runs) for (const b of runs) for (const r of paramRows(a, b)) if (r.changed) varying.add(r.name);
  return runs.map((run) => {
    const rows = run.end?.report ? taskRows(run.end.report.pairs) : [];
    const own = paramRows(run, run).filter((r) => varying.has(r.name));
    const label = own.length ? own.map((r) => `${r.name}=${typeof r.a === 'string' ? r.a : JSON.stringify(r.a)}`).join(' ') : run.id;
    return { run, label, rows, averageDelta: run.end?.report?.averageDelta };
  });
}
