import { Listr } from 'listr2';

/** The part of a listr2 task this reporter drives. */
interface Task {
  title: string | undefined;
  output: string | undefined;
  skip(message: string): void;
}
import type { LeaseHolder } from '../cache/lease.js';
import type { RunSummary } from '../execute/scheduler.js';
import { indent, secondsOf, summaryLine } from './reporter.js';
import type { Reporter } from '../execute/scheduler.js';
import type { Finished } from '../execute/runner.js';

/** Above this many nodes a task per node is noise: one task shows the count instead. */
const MAX_TASKS = 40;

/** A live task list on a terminal (listr2): one task per node that the plan expects to run. */
export class ListrReporter implements Reporter {
  private readonly waiters = new Map<string, (f: Finished) => void>();
  private readonly tasks = new Map<string, Task>();
  private listr?: Promise<unknown>;
  private counter?: { done: number; total: number; task?: Task; finish?: () => void };
  private readonly failures: string[] = [];
  private readonly running = new Set<string>();

  begin(expected: string[]): void {
    if (expected.length === 0) return;
    if (expected.length > MAX_TASKS) {
      this.counter = { done: 0, total: expected.length };
      const counter = this.counter;
      this.listr = new Listr([
        {
          title: `running ${expected.length} nodes`,
          task: (_ctx, task) => new Promise<void>((resolve) => {
            counter.task = task;
            counter.finish = resolve;
          }),
        },
      ], { exitOnError: false }).run().catch(() => undefined);
      return;
    }
    const list = new Listr(
      expected.map((id) => ({
        title: id,
        task: (_ctx: unknown, task: Task) => {
          this.tasks.set(id, task);
          task.output = this.running.has(id) ? 'running' : 'waiting for upstream';
          return new Promise<void>((resolve, reject) => {
            this.waiters.set(id, (f) => {
              this.waiters.delete(id); // settled once: end() only reaches tasks never finished
              if (f.status === 'failed') reject(new Error(`${f.error}${f.logTail ? '\n' + indent(f.logTail) : ''}`));
              else if (f.status === 'skipped') {
                task.skip(`${id}: ${f.reason}`);
                resolve();
              } else if (f.status === 'cached') {
                task.skip(`${id}: cached (upstream outputs unchanged)`);
                resolve();
              } else {
                task.title = `${id} (${secondsOf(f.record.durationMs)})`;
                resolve();
              }
            });
          });
        },
      })),
      { concurrent: true, exitOnError: false, renderer: 'default', rendererOptions: { collapseErrors: false, collapseSkips: false } },
    );
    this.listr = list.run().catch(() => undefined);
  }

  started(id: string): void {
    this.running.add(id); // listr may not have started this task's function yet
    const t = this.tasks.get(id);
    if (t) t.output = 'running';
  }

  progress(id: string, line: string): void {
    const t = this.tasks.get(id);
    if (t) t.output = line;
    else if (this.counter?.task) this.counter.task.output = `${id}: ${line}`;
  }

  waiting(id: string, h: LeaseHolder): void {
    const t = this.tasks.get(id);
    if (t) t.output = `waiting for pid ${h.pid} on ${h.host}`;
  }

  finished(id: string, f: Finished): void {
    if (f.status === 'failed') this.failures.push(`FAILED  ${id}: ${f.error}${f.logTail ? '\n' + indent(f.logTail) : ''}`);
    if (this.counter) {
      this.counter.done++;
      if (this.counter.task) this.counter.task.title = `${this.counter.done}/${this.counter.total} nodes`;
      return;
    }
    this.waiters.get(id)?.(f);
  }

  async end(summary: RunSummary, seconds: number): Promise<void> {
    this.counter?.finish?.();
    for (const w of this.waiters.values()) w({ status: 'skipped', reason: 'not reached' });
    await this.listr;
    if (this.counter) for (const f of this.failures) process.stderr.write(f + '\n');
    process.stderr.write(summaryLine(summary, seconds) + '\n');
  }
}
