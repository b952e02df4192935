import { checkCapacity, runGraph, type RunSummary } from '../execute/scheduler.js';
import { checkSourceDeps, planAll } from '../plan.js';
import { defaultJobs, nodeOrError, type Project } from '../project.js';
import { ListrReporter } from '../report/listr-reporter.js';
import { PlainReporter, type Reporter } from '../report/reporter.js';
import { detectGpus, open, parseResources, positiveInt, type GlobalOptions } from './common.js';
import { printStatus } from './status.js';
import { EXIT_FAILED, UserError } from '../diagnostics.js';
import { localExecutor } from '../execute/executor.js';
import { SlurmExecutor } from '../execute/slurm.js';
import { CACHE_LEASE, CacheNotWritable, LeaseManager, type Lease } from '../cache/lease.js';

export interface RunOptions {
  jobs?: string;
  dryRun?: boolean;
  force?: string[];
  keepGoing?: boolean;
  resource?: string[];
  verbose?: boolean;
  executor?: string;
}

export async function runCommand(pipeline: string | undefined, opts: RunOptions, g: GlobalOptions): Promise<number> {
  const t0 = performance.now();
  const project = await open(pipeline, g);
  if (opts.dryRun) {
    // A dry run checks the options as a run does: what -n accepts, a run accepts.
    const { force } = runSettings(project, opts);
    const decisions = planAll(project, { force });
    project.saveState();
    printStatus(project, decisions, false);
    return 0;
  }
  // A live task list on a terminal; plain lines in CI, pipes and files.
  const fancy = process.stderr.isTTY && !process.env.CI && !opts.verbose;
  const reporter: Reporter = fancy ? new ListrReporter() : new PlainReporter(undefined, opts.verbose);
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
    const summary = await executeRun(project, opts, reporter, controller.signal, fancy, t0);
    if (summary.interrupted) return 130;
    if (project.report && summary.failed.length === 0) {
      // A pipeline that says what to compare ends with the comparison.
      const { comparePairs, formatTable, taskRows } = await import('../report/metrics-table.js');
      process.stdout.write(formatTable(taskRows(comparePairs(project))) + '\n');
    }
    return summary.failed.length > 0 ? EXIT_FAILED : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const SLURM_DEFAULT_JOBS = 32;

function executorChoice(flag: string | undefined, pipeline: 'local' | 'slurm' | undefined): 'local' | 'slurm' {
  const name = flag ?? pipeline ?? 'local';
  if (name !== 'local' && name !== 'slurm') throw new UserError(`--executor must be local or slurm, not "${name}"`);
  return name;
}

interface RunSettings {
  force: Set<string>;
  executorName: 'local' | 'slurm';
  jobs: number;
  capacity?: Record<string, number>;
}

/** The run's options, checked: every bad value is an input error, with or without -n. */
function runSettings(project: Project, opts: RunOptions): RunSettings {
  const force = new Set(opts.force ?? []);
  for (const id of force) nodeOrError(project, id);
  const executorName = executorChoice(opts.executor, project.executor);
  // Under Slurm the cluster allocates cpus and GPUs; --jobs bounds the jobs queued at once.
  const jobs = opts.jobs !== undefined ? positiveInt(opts.jobs, '--jobs') : executorName === 'slurm' ? SLURM_DEFAULT_JOBS : defaultJobs();
  const resources = parseResources(opts.resource);
  const capacity = executorName === 'slurm' ? undefined : { cpu: jobs, gpu: detectGpus(), ...resources };
  if (capacity) checkCapacity(project, capacity, jobs);
  return { force, executorName, jobs, capacity };
}

/** One run of an opened project: check, plan what the reporter needs, run, report. */
export async function executeRun(project: Project, opts: RunOptions, reporter: Reporter, signal: AbortSignal, listExpected: boolean, t0 = performance.now()): Promise<RunSummary> {
  const { force, executorName, jobs, capacity } = runSettings(project, opts);
  const leases = new LeaseManager(project.store.locksDir, `run of ${project.displayPath}`);
  let cacheLease: Lease;
  try {
    // Held for the whole run: gc waits for it, and a run waits for a gc in progress.
    cacheLease = await leases.acquire(CACHE_LEASE, `run of ${project.displayPath}`, 'read', (h) => process.stderr.write(`dfwe: waiting for ${h.what} (pid ${h.pid} on ${h.host}) to finish\n`), signal);
  } catch (err) {
    leases.close();
    if (err instanceof CacheNotWritable) return readOnlyRun(project, force, reporter, err, t0);
    throw err;
  }
  try {
    // Missing source files are input errors reported (located) before anything runs.
    const expected = listExpected ? planAll(project, { force }).filter((d) => d.state !== 'cached').map((d) => d.id) : (checkSourceDeps(project), []);
    project.saveState();
    const executor = executorName === 'slurm' ? await SlurmExecutor.connect() : localExecutor;
    await reporter.begin(expected);
    let summary: RunSummary;
    try {
      summary = await runGraph(project, { jobs, keepGoing: opts.keepGoing ?? false, force, capacity, executor, runtime: project.runtime, signal, events: reporter, leases });
    } finally {
      executor.close();
    }
    project.saveState();
    await reporter.end(summary, (performance.now() - t0) / 1000);
    return summary;
  } finally {
    cacheLease.release();
    leases.close();
  }
}

/**
 * A cache dfwe cannot write (a read-only mount, a shared team cache): a run that needs nothing
 * written succeeds, since every result is already in place; any other is an input error.
 */
async function readOnlyRun(project: Project, force: Set<string>, reporter: Reporter, err: CacheNotWritable, t0: number): Promise<RunSummary> {
  const decisions = planAll(project, { force });
  const pending = decisions.filter((d) => d.state !== 'cached' || d.restore);
  if (pending.length > 0) {
    const ids = pending.slice(0, 5).map((d) => d.id).join(', ') + (pending.length > 5 ? ', …' : '');
    throw new UserError({ message: `${err.message}; ${pending.length} node${pending.length === 1 ? '' : 's'} would need it (${ids})`, hint: 'use a writable cache: --cache DIR or DFWE_CACHE' });
  }
  await reporter.begin([]);
  const summary: RunSummary = { ran: 0, cached: decisions.length, restored: 0, failed: [], skipped: 0, interrupted: false };
  process.stderr.write(`dfwe: the cache ${project.store.root} is read-only; every result is already in place, so nothing needed writing\n`);
  await reporter.end(summary, (performance.now() - t0) / 1000);
  return summary;
}
