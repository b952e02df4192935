import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { formatDiagnostic, UserError } from '../diagnostics.js';
import { realWorkspace, resolvePipelinePath, type Project } from '../project.js';
import { PlainReporter } from '../report/reporter.js';
import { open, type GlobalOptions } from './common.js';
import { executeRun } from '../engine/run.js';
import type { RunOptions } from '../engine/run-options.js';

/** How long a burst of file events settles before a run starts (an editor's save is several). */
const SETTLE_MS = 150;

/**
 * Run, then watch the pipeline file and every source dependency; on a change, plan again and
 * run what changed. An invalid edit prints its located error and watching goes on. A change
 * during a run does not interrupt it: one more run starts when it ends.
 */
export async function watchCommand(pipeline: string | undefined, opts: RunOptions, g: GlobalOptions): Promise<number> {
  const say = (line: string): void => void process.stderr.write(line + '\n');
  const reporter = new PlainReporter(undefined, opts.verbose);
  const controller = new AbortController();
  let watcher: FSWatcher | undefined;
  let watched = new Set<string>();
  let running = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  let round = 0;

  const watchSet = (project: Project): Set<string> => {
    const paths = new Set([project.pipelinePath]);
    for (const n of project.graph.order) {
      const produced = project.graph.producedDeps.get(n.id)!;
      for (const d of n.deps) if (!produced.has(d)) paths.add(resolve(project.workspace, d));
    }
    return paths;
  };

  const cycle = async (reason: string): Promise<void> => {
    if (running) {
      // A change during a run: one more run when this one ends, said once, so the user knows it was seen.
      if (!again) say(`dfwe watch: ${reason} during the run; one more run when it ends`);
      again = true;
      return;
    }
    running = true;
    round++;
    say(`dfwe watch: ${reason}`);
    try {
      let project: Project | undefined;
      try {
        project = await open(pipeline, g);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        for (const d of err.diagnostics) say(formatDiagnostic(d));
        say('dfwe watch: fix the pipeline; still watching');
        // A deleted file may have dropped out of the watcher: watch for it to come back. It may
        // come back while it is added again, which the watcher takes as there from the start (no
        // event): if no round has begun by a moment later and it is there, that is its return.
        if (!existsSync(pipelineFile)) {
          await watcher!.unwatch(pipelineFile);
          watcher!.add(pipelineFile);
          const missingIn = round;
          setTimeout(() => {
            if (round === missingIn && !running && !controller.signal.aborted && existsSync(pipelineFile)) void cycle(`${pipelineFile} is back`);
          }, 2 * SETTLE_MS).unref();
        }
      }
      if (project) {
        const next = watchSet(project);
        const add = [...next].filter((p) => !watched.has(p));
        const drop = [...watched].filter((p) => !next.has(p) && p !== pipelineFile);
        if (add.length) watcher!.add(add);
        if (drop.length) watcher!.unwatch(drop);
        watched = new Set([...next, pipelineFile]);
        try {
          await executeRun(project, opts, reporter, controller.signal, false, performance.now(), 'watch');
        } catch (err) {
          if (!(err instanceof UserError)) throw err;
          for (const d of err.diagnostics) say(formatDiagnostic(d));
        }
      }
    } finally {
      running = false;
    }
    if (controller.signal.aborted) return;
    say(`dfwe watch: watching ${watched.size} path${watched.size === 1 ? '' : 's'} (round ${round}); Ctrl-C to stop`);
    if (again) {
      again = false;
      await cycle('changed during the run; running again');
    }
  };

  // Which file is watched is decided once: if ./dfwe.yaml vanishes for a moment (an editor's or
  // git's delete-then-write), that is a missing pipeline, not a switch to the embedded quickstart.
  const pipelineFile = resolvePipelinePath(realWorkspace(g.workspace ?? process.cwd()), pipeline);
  pipeline = pipelineFile;
  const first = await open(pipeline, g).catch((err: unknown) => {
    if (err instanceof UserError) return undefined;
    throw err;
  });
  watched = first ? watchSet(first) : new Set([pipelineFile]);
  watcher = watch([...watched], { ignoreInitial: true, awaitWriteFinish: false, atomic: true });
  await new Promise<void>((resolve) => watcher!.on('ready', () => resolve()));
  watcher.on('all', (_event, path) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void cycle(`${path} changed`), SETTLE_MS);
  });

  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => {
      controller.abort();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await cycle('starting');
  await stopped;
  if (timer) clearTimeout(timer);
  await watcher.close();
  return 0;
}
