import type { CacheStore } from '../cache/store.js';
import { taskRows } from '../comparison.js';
import type { Run } from './runs.js';
import { readServed } from './served-set.js';

/*
 * Two runs side by side, as `dvc exp diff` puts two experiments: their params, what else they
 * were asked (pipeline file, git commit, filters) and their metrics, each a row with both values.
 * Metrics are every node's reported numbers (from the runs' served sets) and the report's table.
 */

export interface DiffRow {
  name: string;
  a?: unknown;
  b?: unknown;
  changed: boolean;
}

export interface RunDiff {
  params: DiffRow[];
  settings: DiffRow[];
  metrics: DiffRow[];
  /** Runs whose node metrics are no longer in the cache (gc, or a run killed before its end). */
  withoutNodeMetrics: string[];
}

/** Nested params as dotted names; lists and scalars are values. */
function flatten(value: unknown, prefix: string, out: Map<string, unknown>): Map<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, value);
  return out;
}

function rows(a: Map<string, unknown>, b: Map<string, unknown>): DiffRow[] {
  const names = [...new Set([...a.keys(), ...b.keys()])];
  return names.map((name) => ({ name, a: a.get(name), b: b.get(name), changed: JSON.stringify(a.get(name)) !== JSON.stringify(b.get(name)) }));
}

function settingsOf(run: Run): Map<string, unknown> {
  const s = run.start;
  const m = new Map<string, unknown>([
    ['pipeline', s.pipeline],
    ['pipeline file (digest)', s.pipelineDigest],
    ['git commit', s.git ? `${s.git.commit.slice(0, 12)}${s.git.dirty ? ' (dirty)' : ''}` : undefined],
    ['--only', Object.keys(s.only).length ? Object.entries(s.only).map(([k, v]) => `${k}=${v.join('|')}`).join(' ') : undefined],
    ['executor', s.executor],
  ]);
  return m;
}

function metricsOf(store: CacheStore, run: Run): { metrics: Map<string, unknown>; nodeMetrics: boolean } {
  const m = new Map<string, unknown>();
  const report = run.end?.report;
  if (report) {
    for (const r of taskRows(report.pairs)) {
      m.set(`report: ${r.task} ${report.baseline}`, r.baseline);
      m.set(`report: ${r.task} ${report.method}`, r.method);
      m.set(`report: ${r.task} delta`, r.delta);
    }
    m.set('report: average delta', report.averageDelta);
  }
  const served = readServed(store, run.end?.served);
  for (const [id, , , metrics] of served?.nodes ?? []) for (const [k, v] of Object.entries(metrics ?? {})) m.set(`${id}: ${k}`, v);
  return { metrics: m, nodeMetrics: served !== undefined };
}

/** The two runs' params, row by row. */
export function paramRows(a: Run, b: Run): DiffRow[] {
  return rows(flatten(a.start.params, '', new Map()), flatten(b.start.params, '', new Map()));
}

export function diffRuns(store: CacheStore, a: Run, b: Run): RunDiff {
  const ma = metricsOf(store, a);
  const mb = metricsOf(store, b);
  return {
    params: paramRows(a, b),
    settings: rows(settingsOf(a), settingsOf(b)),
    // Node metrics only where both runs still have them: a missing side is not a change.
    metrics: rows(ma.metrics, mb.metrics).filter((r) => r.name.startsWith('report: ') || (ma.nodeMetrics && mb.nodeMetrics)),
    withoutNodeMetrics: [ma.nodeMetrics ? undefined : a.id, mb.nodeMetrics ? undefined : b.id].filter((x): x is string => x !== undefined),
  };
}
