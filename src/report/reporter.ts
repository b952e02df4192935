import type { LeaseHolder } from '../cache/lease.js';
import type { Reporter, RunSummary } from '../execute/scheduler.js';
import type { Finished } from '../execute/runner.js';


export function secondsOf(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)}s` : `${(ms / 1000).toFixed(1)}s`;
}

export function indent(text: string, prefix = '    | '): string {
  return text.split('\n').map((l) => prefix + l).join('\n');
}

export function summaryLine(s: RunSummary, seconds: number): string {
  const total = s.ran + s.cached + s.failed.length + s.skipped;
  const parts = [`${s.ran} ran`, `${s.cached} cached${s.restored ? ` (${s.restored} restored)` : ''}`, `${s.failed.length} failed`, `${s.skipped} skipped`];
  return `dfwe: ${total} node${total === 1 ? '' : 's'}: ${parts.join(', ')} in ${seconds.toFixed(2)}s${s.interrupted ? ' (interrupted)' : ''}`;
}

/** How long a line may wait to be written with the ones after it. */
const BATCH_MS = 50;

/**
 * Lines for stderr, written a batch at a time: at most BATCH_MS late, at once for what a user must
 * see now (a failure, a wait, the end), and before the process exits. A run of 20,000 trivial
 * nodes said 40,000 lines, each a write and a wake-up of whatever reads the pipe (a CI runner,
 * `tee`): 3 % of the engine thread's time, which bounds a run where stages are spread over many
 * cores (at --jobs 2 the run's wall time did not change).
 */
export class BatchedLines {
  private lines: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly onExit = (): void => this.flush();

  constructor(private readonly write: (text: string) => void = (t) => void process.stderr.write(t)) {}

  add(line: string, now = false): void {
    this.lines.push(line);
    if (now) return this.flush();
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), BATCH_MS).unref();
    process.once('exit', this.onExit);
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    process.off('exit', this.onExit);
    if (this.lines.length === 0) return;
    const text = this.lines.join('\n') + '\n';
    this.lines = [];
    this.write(text);
  }
}

/** One line per event: for CI logs, pipes and files. */
export class PlainReporter implements Reporter {
  private readonly out: (line: string, now?: boolean) => void;

  constructor(out?: (line: string) => void, private readonly verbose = false) {
    const batched = out ? undefined : new BatchedLines();
    this.out = out ?? ((line, now) => batched!.add(line, now));
  }

  begin(): void {}

  started(id: string): void {
    this.out(`run     ${id}`);
  }

  waiting(id: string, h: LeaseHolder): void {
    this.out(`wait    ${id}: another run holds it (pid ${h.pid} on ${h.host}, since ${h.since})`, true);
  }

  progress(id: string, line: string): void {
    this.out(`        ${id}: ${line}`);
  }

  finished(id: string, o: Finished): void {
    switch (o.status) {
      case 'ran':
        this.out(`done    ${id} (${secondsOf(o.record.durationMs)})`);
        break;
      case 'cached':
        if (o.restored) this.out(`cached  ${id} (restored into the workspace)`);
        else if (this.verbose) this.out(`cached  ${id}`);
        break;
      case 'failed':
        this.out(`FAILED  ${id}: ${o.error}`, !o.logTail);
        if (o.logTail) this.out(indent(o.logTail), true);
        break;
      case 'skipped':
        this.out(`skip    ${id}: ${o.reason}`);
        break;
    }
  }

  end(summary: RunSummary, seconds: number): void {
    this.out(summaryLine(summary, seconds), true);
  }
}
