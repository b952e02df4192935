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

/** One line per event: for CI logs, pipes and files. */
export class PlainReporter implements Reporter {
  constructor(
    private readonly out: (line: string) => void = (l) => process.stderr.write(l + '\n'),
    private readonly verbose = false,
  ) {}

  begin(): void {}

  started(id: string): void {
    this.out(`run     ${id}`);
  }

  waiting(id: string, h: LeaseHolder): void {
    this.out(`wait    ${id}: another run holds it (pid ${h.pid} on ${h.host}, since ${h.since})`);
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
        this.out(`FAILED  ${id}: ${o.error}`);
        if (o.logTail) this.out(indent(o.logTail));
        break;
      case 'skipped':
        this.out(`skip    ${id}: ${o.reason}`);
        break;
    }
  }

  end(summary: RunSummary, seconds: number): void {
    this.out(summaryLine(summary, seconds));
  }
}
