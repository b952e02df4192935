import { runGraph, type RunSummary } from '../execute/scheduler.js';
import { localRunner } from '../execute/node-runner.js';
import { leftoverStopper } from '../execute/executors/index.js';
import { DryRunner, type DryRunResult } from '../execute/dry-runner.js';
import { readAttempt } from '../cache/records.js';
import type { Decision } from './plan.js';
import type { Project } from '../project.js';
import { checkInputs, checkRunOptions } from './preflight.js';
import { checkUndeclared, keepUndeclaredFindings } from './undeclared.js';
import type { Reporter } from '../execute/scheduler.js';
import { readOnlyNote, type RunOptions } from './run-options.js';
import { UserError } from '../diagnostics.js';
import { CACHE_LEASE, CacheNotWritable, LeaseManager, type Lease } from '../cache/lease.js';
import { updateSnapshot, writeSnapshot, type Snapshot, type SnapshotCheck } from './snapshot.js';
import type { NodeDef } from '../pipeline/types.js';
import { plan, type PartPlan } from './planner.js';
import { HistoryRecorder } from '../history/recorder.js';
import { RemoteSession, warnUser } from '../cache/remote-session.js';
import { startHistory, subjectOf, type RunMeta } from '../history/start.js';

/*
 * The run sequence, for every command that runs a pipeline (run, watch): options checked (preflight.ts),
 * the cache's read lease taken, inputs checked, the graph run, the snapshot and memos saved.
 * Commands only format what it reports.
 */

/** What `dfwe run -n` tells: the plan, and where the scheduler would start what will run (none when a node is blocked). */
export interface DryRun {
  decisions: Decision[];
  would?: DryRunResult;
  jobs: number;
}

/**
 * What a run would do, and why, with the options checked as a run checks them (what -n accepts, a
 * run accepts); then the scheduler carries the plan out with the dry runner, so the order nodes
 * would start in and their slots and GPUs are this run's own.
 */
export async function dryRun(project: Project, opts: RunOptions, snapshot?: Snapshot): Promise<DryRun> {
  const { force, jobs, capacity, gpus } = checkRunOptions(project, opts);
  checkUndeclared(project);
  const { decisions } = plan(project, { force, snapshot });
  project.saveState();
  // A run with a blocked node refuses before it starts anything (its preflight).
  if (decisions.some((d) => d.state === 'blocked')) return { decisions, jobs };
  const runner = new DryRunner(new Map(decisions.map((d) => [d.id, d])), (id) => readAttempt(project.store, project.workspace, id)?.durationMs);
  const quiet = { started() {}, finished() {}, waiting() {}, progress() {} };
  await runGraph(project.graph, runner, { jobs, keepGoing: true, capacity, gpus, signal: new AbortController().signal, events: quiet });
  return { decisions, would: runner.result(), jobs };
}

/**
 * One run of an opened project: check, plan, carry the plan out, record it in the history, report.
 * `snapshot`: this pipeline variant's last snapshot, if the command read one (see planner.ts);
 * `check`: given when the command found it written for this very pipeline with no output,
 * directory on the way or record shard changed since (what changed: the planner does not look again).
 * `part`: the plan of a project opened in part for it (part-run.ts), which schedules only what
 * that plan reaches.
 */
export async function executeRun(project: Project, opts: RunOptions, userReporter: Reporter, signal: AbortSignal, listExpected: boolean, t0 = performance.now(), command: RunMeta['command'] = 'run', snapshot?: Snapshot, check?: SnapshotCheck, part?: PartPlan): Promise<RunSummary> {
  const checked = check !== undefined;
  const { force, executorKind, jobs, capacity, gpus } = checkRunOptions(project, opts);
  // Missing source files and misplaced outputs (one that is, holds or lies in the cache) are input
  // errors reported (located) before anything is written, the cache's marker included. Where the
  // snapshot was checked, every directory on the way to every output is the one it witnessed
  // after such a check passed, or still a directory where its parent changed (the paths, and so
  // where they lead, are the same): the outputs are not looked at again (a node
  // that writes one still checks its path as it does, node-runner.ts prepareOutputPath).
  // Sources are looked at only where the snapshot saw them change: every other was witnessed as it was.
  const sources = checkInputs(project, { outputs: !checked, nodes: check && dirtyNodes(project, check) });
  checkUndeclared(project);
  project.store.claim();
  keepUndeclaredFindings(project);
  // A dead run's lease is broken with what it left running stopped, by whichever executor launched it.
  const leases = new LeaseManager(project.store.locksDir, `run of ${project.displayPath}`, leftoverStopper(project.executors), executorKind.name);
  let cacheLease: Lease;
  try {
    // Held for the whole run: gc waits for it, and a run waits for a gc in progress.
    cacheLease = await leases.acquire(CACHE_LEASE, `run of ${project.displayPath}`, 'read', (h) => process.stderr.write(`dfwe: waiting for ${h.what} (pid ${h.pid} on ${h.host}) to finish\n`), signal);
  } catch (err) {
    leases.close();
    if (err instanceof CacheNotWritable) return readOnlyRun(part?.decisions ?? plan(project, { force, sources }).decisions, (project.part?.order ?? project.graph.order).length, project.store.root, userReporter, err, t0);
    throw err;
  }
  try {
    const { decisions, snapshot: planned } = part ?? plan(project, { force, sources, snapshot, check, forRun: true });
    const expected = listExpected ? decisions.filter((d) => d.state !== 'cached').map((d) => d.id) : [];
    project.saveState();
    const executor = await executorKind.connect();
    const remote = await RemoteSession.open(project.store, opts, warnUser, project.remote);
    const log = await startHistory(project.store, subjectOf(project, sources), { command, executor: executorKind.name, jobs });
    const recorder = log && new HistoryRecorder(userReporter, log, project, part && { base: part.base, part: part.reach });
    const reporter = recorder ?? userReporter;
    await reporter.begin(expected);
    let summary: RunSummary;
    let remoteSaid: string | undefined;
    let closed: void | Promise<void>;
    try {
      const runner = localRunner(project, { leases, executor, executorKind, force, plan: new Map(decisions.map((d) => [d.id, d])), runtime: project.runtime, signal, events: reporter, streamOutput: opts.verbose ?? false, remote });
      try {
        summary = await runGraph(project.graph, runner, { jobs, keepGoing: opts.keepGoing ?? false, capacity, gpus, signal, events: reporter, served: part?.served });
      } finally {
        runner.close();
        remoteSaid = await remote?.done();
      }
    } catch (err) {
      // A run that ends by an error leaves its history without an end line, as a killed one does.
      log?.close();
      throw err;
    } finally {
      closed = executor.close();
    }
    // Its results were all written by now (the snapshot waits a tick past it rather than find them young).
    const wroteAt = summary.ran + summary.restored > 0 ? Date.now() : undefined;
    const served = recorder?.finish(summary);
    // Everything ran or was cached: the next no-op is told from a snapshot.
    if (summary.failed.length === 0 && summary.skipped === 0 && !summary.interrupted) {
      if (planned) await updateSnapshot(project, planned, summary.served, served, wroteAt);
      else await writeSnapshot(project, summary.served, served, wroteAt);
    }
    project.saveState();
    await reporter.end(summary, (performance.now() - t0) / 1000);
    if (remoteSaid) process.stderr.write(`dfwe: ${remoteSaid}\n`);
    // The starter has usually exited while the snapshot was written.
    await closed;
    return summary;
  } finally {
    cacheLease.release();
    leases.close();
  }
}

/**
 * A cache dfwe cannot write (a read-only mount, a shared team cache): a run that needs nothing
 * written succeeds, since every result is already in place; any other is an input error.
 * `decisions`: of every node but those served as the snapshot had them (a part run's); `nodes`:
 * how many there are in all.
 */
async function readOnlyRun(decisions: Decision[], nodes: number, cacheRoot: string, reporter: Reporter, err: CacheNotWritable, t0: number): Promise<RunSummary> {
  const pending = decisions.filter((d) => d.state !== 'cached' || d.restore);
  if (pending.length > 0) {
    const ids = pending.slice(0, 5).map((d) => d.id).join(', ') + (pending.length > 5 ? ', …' : '');
    throw new UserError({ message: `${err.message}; ${pending.length} node${pending.length === 1 ? '' : 's'} would need it (${ids})`, hint: 'use a writable cache: --cache DIR or DFWE_CACHE' });
  }
  await reporter.begin([]);
  const summary: RunSummary = { served: new Map(), ran: 0, cached: nodes, restored: 0, failed: [], skipped: 0, interrupted: false };
  process.stderr.write(`${readOnlyNote(cacheRoot)}\n`);
  await reporter.end(summary, (performance.now() - t0) / 1000);
  return summary;
}

/** The nodes whose sources a checked snapshot saw change; undefined (all of them) where one is not in this project. */
function dirtyNodes(project: Project, check: SnapshotCheck): NodeDef[] | undefined {
  const nodes = check.dirty.map((i) => project.graph.byId.get(check.snap.ids[i]!));
  return nodes.every((n) => n !== undefined) ? (nodes as NodeDef[]) : undefined;
}
