import { checkCapacity, runGraph, type RunSummary } from '../execute/scheduler.js';
import { checkSourceDeps, planAll } from '../plan.js';
import { defaultJobs, nodeOrError, type Project } from '../project.js';
import { ListrReporter } from '../report/listr-reporter.js';
import { PlainReporter, type Reporter } from '../report/reporter.js';
import { detectGpus, open, parseResources, positiveInt, type GlobalOptions } from './common.js';
import { printStatus } from './status.js';
import { EXIT_FAILED } from '../diagnostics.js';

export interface RunOptions {
  jobs?: string;
  dryRun?: boolean;
  force?: string[];
  keepGoing?: boolean;
  resource?: string[];
  verbose?: boolean;
}

export async function runCommand(pipeline: string | undefined, opts: RunOptions, g: GlobalOptions): Promise<number> {
  const t0 = performance.now();
  const project = await open(pipeline, g);
  if (opts.dryRun) {
    const force = new Set(opts.force ?? []);
    for (const id of force) nodeOrError(project, id);
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

/** One run of an opened project: check, plan what the reporter needs, run, report. */
export async function executeRun(project: Project, opts: RunOptions, reporter: Reporter, signal: AbortSignal, listExpected: boolean, t0 = performance.now()): Promise<RunSummary> {
  const force = new Set(opts.force ?? []);
  for (const id of force) nodeOrError(project, id);
  const jobs = opts.jobs ? positiveInt(opts.jobs, '--jobs') : defaultJobs();
  const capacity = { cpu: jobs, gpu: detectGpus(), ...parseResources(opts.resource) };
  checkCapacity(project, capacity, jobs);
  // Missing source files are input errors reported (located) before anything runs.
  const expected = listExpected ? planAll(project, { force }).filter((d) => d.state !== 'cached').map((d) => d.id) : (checkSourceDeps(project), []);
  project.saveState();
  await reporter.begin(expected);
  const summary = await runGraph(project, { jobs, keepGoing: opts.keepGoing ?? false, force, capacity, runtime: project.runtime, signal, events: reporter });
  project.saveState();
  await reporter.end(summary, (performance.now() - t0) / 1000);
  return summary;
}
