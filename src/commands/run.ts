import type { RunSummary } from '../execute/scheduler.js';
import { PlainReporter, secondsOf } from '../report/reporter.js';
import type { Reporter } from '../execute/scheduler.js';
import { open, parseOnly, parseParams, projectOptions, snapshotOf, type GlobalOptions } from './common.js';
import type { Project, ProjectLocation } from '../project.js';
import type { DryRunResult } from '../execute/dry-runner.js';
import { maxOf } from '../util/arrays.js';
import type { Snapshot } from '../engine/snapshot.js';
import { executors } from '../execute/executors/index.js';
import { EXIT_FAILED } from '../diagnostics.js';
import { executorChoice, readOnlyNote, runCapacity, type RunOptions } from '../engine/run-options.js';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/*
 * `dfwe run`: the engine's run sequence (src/engine/run.ts), shown as a live task list on a
 * terminal and as plain lines elsewhere. The engine, the scheduler and the reporters are loaded
 * only when there is something to run: a no-op is told from the snapshot.
 */

export async function runCommand(pipeline: string | undefined, opts: RunOptions, g: GlobalOptions, targets: string[] = []): Promise<number> {
  const t0 = performance.now();
  // The snapshot vouches for the whole pipeline: with targets, the part is planned.
  const found = targets.length === 0 ? await snapshotOf(pipeline, g) : undefined;
  const runsAs = found?.check && snapshotCanTell(found.check.snap, opts);
  const told = runsAs ? found!.check : undefined;
  if (told && told.dirty.length === 0) {
    await noopRun(told.snap, found!.loc, runsAs!, g, t0);
    return 0;
  }
  // Only sources changed: the run opens the part of the project it needs.
  const part = told ? await (await import('../engine/part-run.js')).openPartRun(found!.loc, told, await projectOptions(pipeline, g)) : undefined;
  const project = part?.project ?? (await import('../engine/targets.js')).selectTargets(await open(pipeline, g), targets);
  const { dryRun, executeRun } = await import('../engine/run.js');
  if (opts.dryRun) {
    const { headerOf, printStatus, stageOf } = await import('./status.js');
    const dry = await dryRun(project, opts, found?.snap);
    printStatus(headerOf(project), dry.decisions, stageOf(project), false);
    if (dry.would && dry.would.starts.length > 0) process.stdout.write(wouldStartLines(project, dry.would, dry.jobs, opts.verbose ?? false).join('\n') + '\n');
    return 0;
  }
  const fancy = liveDisplay() && !opts.verbose;
  const reporter = await reporterFor(fancy, opts.verbose);
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write('\ndfwe: interrupted; stopping running stages (again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const summary = await executeRun(project, opts, reporter, controller.signal, fancy, t0, 'run', found?.snap, found?.check, part?.plan);
    if (summary.interrupted) return 130;
    if (project.report && !project.targets && summary.failed.length === 0) {
      // A pipeline that says what to compare ends with the comparison.
      const [{ comparePairs }, { formatTable, taskRows }] = await Promise.all([import('../report/metrics-table.js'), import('../comparison.js')]);
      process.stdout.write(formatTable(taskRows(comparePairs(project))) + '\n');
    }
    return summary.failed.length > 0 ? EXIT_FAILED : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Whether a run can be told from the snapshot, with nothing to do (noopRun) or only what changed
 * sources reach (engine/part-run.ts): not where it cannot answer for what the run was asked
 * (forced nodes, -n, -v's line per node, a report to print, resources this run lacks: the full
 * way says so), nor where it has no served set (a run plans in full once, and records it).
 */
function snapshotCanTell(snap: Snapshot, opts: RunOptions): { executor: string; jobs: number } | undefined {
  if (opts.dryRun || (opts.force?.length ?? 0) > 0 || opts.verbose || snap.report || !snap.served) return undefined;
  const executorKind = executorChoice(executors, opts.executor, snap.executor);
  const { capacity, jobs } = runCapacity(executorKind, opts);
  const fits = !capacity || Object.entries(snap.resources).every(([r, amount]) => amount <= (capacity[r] ?? 0));
  return fits ? { executor: executorKind.name, jobs } : undefined;
}

/**
 * A run with nothing to do, told from the no-op snapshot (src/engine/snapshot.ts) without planning,
 * its options checked as a run checks them (snapshotCanTell).
 */
async function noopRun(snap: Snapshot, loc: ProjectLocation, { executor, jobs }: { executor: string; jobs: number }, g: GlobalOptions, t0: number): Promise<void> {
  const cacheRoot = loc.store.root;
  const reporter = await reporterFor(liveDisplay(), false);
  await reporter.begin([]);
  if (!writable(join(cacheRoot, 'locks'))) process.stderr.write(`${readOnlyNote(cacheRoot)}\n`);
  else await recordNoop(loc, snap, g, executor, jobs);
  const summary: RunSummary = { served: new Map(), ran: 0, cached: snap.ids.length, restored: 0, failed: [], skipped: 0, interrupted: false };
  await reporter.end(summary, (performance.now() - t0) / 1000);
}

/** A no-op's history entry: everything cached, the snapshot's served set. */
async function recordNoop(loc: ProjectLocation, snap: Snapshot, g: GlobalOptions, executor: string, jobs: number): Promise<void> {
  const { startHistory } = await import('../history/start.js');
  const subject = {
    workspace: loc.workspace, pipeline: loc.displayPath, name: snap.header.name, pipelineDigest: loc.pipelineDigest, variantKey: loc.variantKey,
    params: snap.params, overrides: await parseParams(g.param), only: parseOnly(g.only), nodes: snap.ids.length,
  };
  const log = await startHistory(loc.store, subject, { command: 'run', executor, jobs });
  log?.end({ status: 'succeeded', ran: 0, cached: snap.ids.length, restored: 0, failed: 0, skipped: 0, served: snap.served });
}


/** Beyond this many, `run -n` lists the first nodes it would start unless -v asks for every one. */
const START_LINES = 100;

/** The nodes a run would start, in order, when and where (dry-runner.ts); with -v, each one's command. */
export function wouldStartLines(project: Project, would: DryRunResult, jobs: number, verbose: boolean): string[] {
  const { starts } = would;
  const known = starts.filter((s) => s.lastMs !== undefined).length;
  const width = Math.min(40, maxOf(starts.map((s) => s.id.length)));
  const gpuText = (g?: string[]): string => (g ? `gpu ${g.join(',')}` : '');
  const gpuWidth = maxOf(starts.map((s) => gpuText(s.gpus).length));
  const lines = [`would start ${starts.length} node${starts.length === 1 ? '' : 's'} on ${jobs} job slot${jobs === 1 ? '' : 's'}, in this order (times by each node's last run):`];
  const long = would.endMs >= 60_000;
  const at = (ms: number): string => (long ? clock(ms, true) : clock(ms).padStart(clock(would.endMs).length));
  const shown = verbose ? starts : starts.slice(0, START_LINES);
  for (const s of shown) {
    const last = s.lastMs === undefined ? 'never ran' : `last took ${clock(s.lastMs)}`;
    const gpu = gpuWidth ? `  ${gpuText(s.gpus).padEnd(gpuWidth)}` : '';
    lines.push(`  +${at(s.atMs)}  slot ${s.slot}${gpu}  ${s.id.padEnd(width)}  (${last})`);
    if (verbose) {
      const node = project.graph.byId.get(s.id)!;
      const commands = node.type === 'cmd' ? node.commands.map((c) => c.text) : [`(built-in stage ${node.type})`];
      for (const c of commands) lines.push(...c.trimEnd().split('\n').map((l) => `      ${l}`));
    }
  }
  if (shown.length < starts.length) lines.push(`  (and ${starts.length - shown.length} more; -v for every one, with its command)`);
  lines.push(known === 0
    ? 'no estimate: none of them has run before'
    : known === starts.length
      ? `about ${clock(would.endMs)} in all, by the last durations of all ${known}`
      : `at least ${clock(would.endMs)}, by the last durations of ${known} of the ${starts.length} (${starts.length - known} never ran: counted as no time)`);
  return lines;
}

/** A run line's seconds under a minute, else h:mm:ss (`long`: h:mm:ss always, so a column lines up). */
function clock(ms: number, long = false): string {
  if (ms < 60_000 && !long) return secondsOf(ms);
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** A live task list on a terminal; plain lines in CI, pipes and files. */
function liveDisplay(): boolean {
  return process.stderr.isTTY && !process.env.CI;
}

async function reporterFor(live: boolean, verbose = false): Promise<Reporter> {
  if (live) return new (await import('../report/listr-reporter.js')).ListrReporter();
  return new PlainReporter(undefined, verbose);
}
