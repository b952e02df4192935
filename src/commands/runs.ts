import { CacheStore } from '../cache/store.js';
import { UserError } from '../diagnostics.js';
import { diffRuns, type DiffRow } from '../history/diff.js';
import { changedSince, showValue as show } from '../history/summary.js';
import { signed } from '../comparison.js';
import { countsOf, listRuns, resolveRun, type Run } from '../history/runs.js';
import { cacheRoot, displayPathOf, realWorkspace, resolvePipelinePath } from '../project.js';
import type { GlobalOptions } from './common.js';
import { maxOf } from '../util/arrays.js';

/*
 * `dfwe runs` and `dfwe diff`: the run history (src/history/) as tables. By default the runs of
 * this workspace (and of one pipeline, if named); --all for every run the cache recorded.
 */

interface Scope {
  workspace: string;
  store: CacheStore;
  runs: Run[];
}

function scope(pipeline: string | undefined, all: boolean, g: GlobalOptions): Scope {
  const workspace = realWorkspace(g.workspace ?? process.cwd());
  const store = new CacheStore(cacheRoot(workspace, g.cache));
  const { runs, unreadable } = listRuns(store);
  for (const u of unreadable) process.stderr.write(`dfwe: ${u} is not a readable run history file; skipped\n`);
  if (all) return { workspace, store, runs };
  let mine = runs.filter((r) => r.start.workspace === workspace);
  if (pipeline !== undefined) {
    const display = displayPathOf(workspace, resolvePipelinePath(workspace, pipeline));
    mine = mine.filter((r) => r.start.pipeline === display);
  }
  return { workspace, store, runs: mine };
}

function table(rows: string[][], rightAligned: Set<number> = new Set()): string {
  const widths = rows[0]!.map((_, c) => maxOf(rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

function when(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function runsCommand(pipeline: string | undefined, opts: { json?: boolean; all?: boolean; last?: string; noops?: boolean }, g: GlobalOptions): number {
  const last = opts.last === undefined ? 20 : Number(opts.last);
  if (!Number.isInteger(last) || last < 1) throw new UserError(`--last takes a whole number of runs, not "${opts.last}"`);
  const { runs } = scope(pipeline, opts.all ?? false, g);
  const prevOf = new Map<Run, Run | undefined>();
  const sourcesOf = new Map<Run, Run | undefined>();
  const latest = new Map<string, Run>();
  const latestWithSources = new Map<string, Run>();
  for (const r of runs) {
    const key = `${r.start.workspace}\0${r.start.pipeline}`;
    prevOf.set(r, latest.get(key));
    sourcesOf.set(r, latestWithSources.get(key));
    latest.set(key, r);
    if (r.start.sourcesDigest !== undefined) latestWithSources.set(key, r);
  }
  const changed = (r: Run): string => changedSince(prevOf.get(r), r, sourcesOf.get(r));
  // A no-op (everything cached, asked as the run before it) says nothing new: counted, not listed.
  const noop = (r: Run): boolean => {
    const c = countsOf(r);
    return !opts.noops && !opts.json && r.status === 'succeeded' && c.ran === 0 && c.failed === 0 && (r.end?.restored ?? 0) === 0 && changed(r) === '(same)';
  };
  const listed = runs.filter((r) => !noop(r));
  const shown = listed.slice(-last);
  const hiddenNoops = runs.length - listed.length;
  if (opts.json) {
    const out = shown.map((r) => ({
      ...countsOf(r),
      id: r.id, status: r.status, startedAt: r.start.startedAt, endedAt: r.end?.endedAt, command: r.start.command, workspace: r.start.workspace, pipeline: r.start.pipeline,
      params: r.start.params, overrides: r.start.overrides, only: r.start.only, git: r.start.git, changed: changed(r),
      nodes: r.start.nodes, skipped: r.end?.skipped, averageDelta: r.end?.report?.averageDelta, report: r.end?.report,
      // Each node that executed or was restored: state, start and length (ms from the run's start), job slot, host, peak memory.
      executed: r.nodes.map(({ t: _, ...n }) => n),
    }));
    process.stdout.write(JSON.stringify({ runs: out }, null, 2) + '\n');
    return 0;
  }
  if (shown.length === 0 && hiddenNoops === 0) {
    process.stdout.write(`no runs recorded${opts.all ? '' : ' for this workspace'} yet: each \`dfwe run\` records one${opts.all ? '' : ' (--all: every run in the cache)'}\n`);
    return 0;
  }
  const head = ['run', 'started', 'pipeline', 'changed', 'ran', 'cached', 'failed', 'avg delta', 'status'];
  const body = shown.map((r) => {
    const { ran, cached, failed } = countsOf(r);
    return [r.id, when(r.start.startedAt), r.start.pipeline, changed(r), String(ran), show(cached), String(failed), signed(r.end?.report?.averageDelta), r.status];
  });
  process.stdout.write(table([head, ...body], new Set([4, 5, 6, 7])) + '\n');
  if (listed.length > shown.length) process.stdout.write(`(${listed.length - shown.length} earlier run${listed.length - shown.length === 1 ? '' : 's'} not shown: --last N)\n`);
  if (hiddenNoops > 0) process.stdout.write(`(${hiddenNoops} no-op run${hiddenNoops === 1 ? '' : 's'}, everything cached as the run before, not shown: --noops)\n`);
  return 0;
}

export function diffCommand(refA: string | undefined, refB: string | undefined, opts: { json?: boolean; all?: boolean }, g: GlobalOptions): number {
  const { workspace, store, runs } = scope(undefined, true, g);
  const pick = (ref: string): Run => resolveRun(runs, ref, workspace);
  const here = runs.filter((r) => r.start.workspace === workspace).length;
  if (refA === undefined && here < 2) throw new UserError(`dfwe diff compares two runs; ${here === 0 ? 'none is' : 'one is'} recorded for this workspace (name runs of another with their ids; \`dfwe runs --all\` lists them)`);
  // No run named: the last two; one: it against the last.
  const b = pick(refB ?? 'last');
  const a = pick(refA ?? 'last-1');
  if (a === b) throw new UserError(`both sides are run ${a.id}: name two runs (dfwe diff A B), or one to compare with the last`);
  const d = diffRuns(store, a, b);
  const keep = (rows: DiffRow[]): DiffRow[] => (opts.all ? rows : rows.filter((r) => r.changed));
  if (opts.json) {
    process.stdout.write(JSON.stringify({ a: a.id, b: b.id, params: keep(d.params), settings: keep(d.settings), metrics: keep(d.metrics), withoutNodeMetrics: d.withoutNodeMetrics }, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [`dfwe diff ${a.id} (A) → ${b.id} (B)`];
  const section = (title: string, rows: DiffRow[], withDelta: boolean): void => {
    if (rows.length === 0) return;
    const head = withDelta ? [title, 'A', 'B', 'B − A'] : [title, 'A', 'B'];
    const body = rows.map((r) => {
      const cells = [r.name, show(r.a), show(r.b)];
      if (withDelta) cells.push(typeof r.a === 'number' && typeof r.b === 'number' ? signed(r.b - r.a) : '');
      return cells;
    });
    out.push('', table([head, ...body], withDelta ? new Set([1, 2, 3]) : new Set()));
  };
  section('param', keep(d.params), false);
  section('setting', keep(d.settings), false);
  section('metric', keep(d.metrics), true);
  if (out.length === 1) out.push('', `no param, setting or metric differs${opts.all ? '' : ' (--all shows them all)'}`);
  for (const id of d.withoutNodeMetrics) out.push('', `(run ${id}'s node metrics are not in the cache any more: only its report is compared)`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
