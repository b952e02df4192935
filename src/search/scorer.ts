import { spawn, type ChildProcess } from 'node:child_process';
import { boundedLines } from '../util/lines.js';
import { StageInputError } from '../stage-type.js';
import { shellQuote } from '../util/shell.js';
import type { Value } from './optimizers.js';
import { timeout } from '../util/timer.js';

/*
 * The user's evaluator, in any language: given a merged checkpoint's path, it prints one JSON
 * line such as {"score": 71.2, "loss": 0.83} (higher score is better; the loss, if given, breaks
 * ties). Two forms:
 * - a command run once per candidate: `{model}` in it becomes the checkpoint's path (quoted for
 *   the shell), which is also in $DFWE_MODEL;
 * - a server started once, which loads its data and tokenizer once: dfwe writes one JSON line
 *   {"model": PATH, "candidate": N} per candidate to its stdin and reads the answer from its stdout.
 * Every failure (an exit code, no JSON, a score that is not a finite number, a timeout) is a clear
 * error of the node, with the end of what the evaluator printed on stderr.
 */

export interface ScorerSettings {
  command?: string;
  server?: string;
  /** Per candidate. */
  timeoutMs: number;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Lines the evaluator printed that are not its answer, for the node's log. */
  log: (line: string) => void;
}

export interface Scorer {
  score(model: string, candidate: number): Promise<Value>;
  close(): Promise<void>;
}

const TAIL_LINES = 20;

/** The last lines of what a process printed, kept while it runs. */
class Tail {
  private lines: string[] = [];
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > TAIL_LINES) this.lines.shift();
  }
  get text(): string {
    return this.lines.length ? `; its stderr ended with:\n${this.lines.join('\n')}` : '';
  }
}

/** Lines of a scorer's output that reach the stage's log: the first ones, then a note per 10,000 more (1 GB of lines must not fill the log or the heap). */
const LOGGED_LINES = 1000;

function logBudget(log: (line: string) => void): (line: string) => void {
  let n = 0;
  return (line) => {
    n++;
    if (n <= LOGGED_LINES) log(line);
    else if (n % 10_000 === 0) log(`score: (${n - LOGGED_LINES} more lines of the scorer's output not logged)`);
  };
}

/** The candidate an answer line names, if it echoes one (`{"candidate": 3, "score": …}`). */
function candidateOf(line: string): number | undefined {
  try {
    const c = (JSON.parse(line) as { candidate?: unknown }).candidate;
    return typeof c === 'number' ? c : undefined;
  } catch {
    return undefined;
  }
}

/** The answer in a line, if the line is one: a JSON object with a finite numeric score. */
function answerOf(line: string, what: string): Value | undefined {
  const t = line.trim();
  if (!t.startsWith('{')) return undefined;
  let j: unknown;
  try {
    j = JSON.parse(t);
  } catch {
    // Meant as the answer but not JSON: Python's json.dumps(float('nan')) prints NaN, say.
    if (/"score"\s*:/.test(t)) throw new StageInputError(`${what} printed ${t.length > 200 ? `${t.slice(0, 200)}…` : t}, which is not JSON (NaN and Infinity are not JSON numbers)`);
    return undefined;
  }
  if (!j || typeof j !== 'object' || !('score' in j)) return undefined;
  const { score, loss } = j as { score: unknown; loss?: unknown };
  if (typeof score !== 'number' || !Number.isFinite(score)) throw new StageInputError(`${what} printed score ${JSON.stringify(score)}: it must be a finite number`);
  if (loss !== undefined && loss !== null && (typeof loss !== 'number' || !Number.isFinite(loss))) throw new StageInputError(`${what} printed loss ${JSON.stringify(loss)}: it must be a finite number, or left out`);
  return { score, loss: typeof loss === 'number' ? loss : 0 };
}

/*
 * A scorer runs in a process group of its own, as a cmd stage does: at a timeout, and once its
 * shell has exited, the whole group is stopped, so a child it left in the background (`sleep 40 &`)
 * never holds the search (its stdout open) or outlives it. Groups still alive when this process
 * ends (the stage stopped) are stopped with it.
 */
const liveGroups = new Set<number>();
let hooked = false;

function stopGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone already
  }
}

function adoptGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  liveGroups.add(pgid);
  if (hooked) return;
  hooked = true;
  const stopAll = (): void => liveGroups.forEach(stopGroup);
  process.on('exit', stopAll);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      stopAll();
      process.kill(process.pid, sig);
    });
  }
}

function spawnGroup(command: string, opts: { cwd: string; env: NodeJS.ProcessEnv; stdin: 'ignore' | 'pipe' }): ChildProcess {
  const child = spawn('/bin/sh', ['-c', command], { cwd: opts.cwd, env: opts.env, stdio: [opts.stdin, 'pipe', 'pipe'], detached: true });
  adoptGroup(child.pid);
  child.on('exit', () => stopGroup(child.pid));
  child.on('close', () => child.pid !== undefined && liveGroups.delete(child.pid));
  return child;
}

export function openScorer(s: ScorerSettings): Scorer {
  if (s.server) return new ServerScorer(s.server, s);
  return new CommandScorer(s.command!, s);
}

class CommandScorer implements Scorer {
  constructor(
    private readonly command: string,
    private readonly s: ScorerSettings,
  ) {}

  score(model: string, candidate: number): Promise<Value> {
    const cmd = this.command.replaceAll('{model}', shellQuote(model));
    const what = `the scorer \`${this.command}\` (candidate ${candidate})`;
    return new Promise((resolve, reject) => {
      const child = spawnGroup(cmd, { cwd: this.s.cwd, env: { ...this.s.env, DFWE_MODEL: model, DFWE_CANDIDATE: String(candidate) }, stdin: 'ignore' });
      const tail = new Tail();
      let answer: Value | undefined;
      /** The first thing that went wrong; said, with the stderr tail, once the process is gone. */
      let problem: string | undefined;
      const log = logBudget(this.s.log);
      boundedLines(child.stderr!, (l) => {
        tail.push(l);
        log(`score: ${l}`);
      });
      boundedLines(child.stdout!, (l) => {
        try {
          const a = answerOf(l, what);
          if (a) answer = a;
          else log(`score: ${l}`);
        } catch (err) {
          problem ??= (err as Error).message;
        }
      });
      const timer = timeout(() => {
        problem ??= `${what} took longer than ${this.s.timeoutMs / 1000} s (score_timeout) and was stopped`;
        stopGroup(child.pid);
      }, this.s.timeoutMs);
      child.on('error', (err) => (problem ??= `${what} could not start: ${err.message}`));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (problem === undefined && code !== 0) problem = `${what} failed (${signal ? `killed by ${signal}` : `exit code ${code}`})`;
        if (problem === undefined && !answer) problem = `${what} printed no JSON line with a score, such as {"score": 71.2, "loss": 0.83}`;
        if (problem !== undefined) reject(new StageInputError(problem + tail.text));
        else resolve(answer!);
      });
    });
  }

  async close(): Promise<void> {}
}

class ServerScorer implements Scorer {
  private readonly child: ChildProcess;
  private readonly tail = new Tail();
  private waiting: { resolve: (v: Value) => void; reject: (e: Error) => void; what: string; candidate: number; timer: NodeJS.Timeout | undefined } | undefined;
  private ended: Error | undefined;
  /** An answer that came with no candidate waiting: the search fails, even once it has ended. */
  private stray: StageInputError | undefined;
  private readonly closed: Promise<void>;
  private readonly log: (line: string) => void;

  constructor(
    private readonly command: string,
    private readonly s: ScorerSettings,
  ) {
    this.child = spawnGroup(command, { cwd: s.cwd, env: s.env, stdin: 'pipe' });
    // 'close': the process has exited and every line it wrote has been read.
    this.closed = new Promise((r) => this.child.once('close', () => r()));
    const log = logBudget(s.log);
    this.log = log;
    boundedLines(this.child.stderr!, (l) => {
      this.tail.push(l);
      log(`score: ${l}`);
    });
    boundedLines(this.child.stdout!, (l) => this.line(l));
    this.child.stdin!.on('error', () => undefined); // a server that died: said by 'close'
    this.child.on('error', (err) => this.end(new StageInputError(`the scorer server \`${command}\` could not start: ${err.message}`)));
    this.child.on('close', (code, signal) => this.end(new StageInputError(`the scorer server \`${command}\` ended (${signal ? `killed by ${signal}` : `exit code ${code}`})${this.waiting ? ` before it answered ${this.waiting.what.replace(/^.*\(/, '(')}` : ''}${this.tail.text}`)));
  }

  private line(l: string): void {
    const w = this.waiting;
    let a: Value | undefined;
    try {
      a = answerOf(l, w?.what ?? `the scorer server \`${this.command}\``);
    } catch (err) {
      if (w) {
        this.waiting = undefined;
        clearTimeout(w.timer);
        w.reject(new StageInputError(`${(err as Error).message}${this.tail.text}`));
      }
      return;
    }
    if (!a) {
      this.log(`score: ${l}`);
      return;
    }
    // One answer per request: an answer with none waiting (a second answer to one request) would
    // be credited to the next candidate, so the server is stopped and the search fails with why.
    if (!w) {
      this.stray ??= new StageInputError(`the scorer server \`${this.command}\` answered when no candidate was waiting for one (${l.trim().slice(0, 200)}): it must answer each request with exactly one line`);
      this.end(this.stray);
      stopGroup(this.child.pid);
      return;
    }
    const echoed = candidateOf(l);
    if (echoed !== undefined && echoed !== w.candidate) {
      this.waiting = undefined;
      clearTimeout(w.timer);
      w.reject(new StageInputError(`${w.what} was answered for candidate ${echoed}: each answer must follow its own request`));
      return;
    }
    this.waiting = undefined;
    clearTimeout(w.timer);
    w.resolve(a);
  }

  private end(err: StageInputError): void {
    this.ended ??= err;
    const w = this.waiting;
    if (w) {
      this.waiting = undefined;
      clearTimeout(w.timer);
      w.reject(this.ended);
    }
  }

  async score(model: string, candidate: number): Promise<Value> {
    // What the server already wrote is read before the next request goes out (the event loop's
    // next poll): a second answer to the last request is then told as one. One that comes later
    // is taken for this candidate's, and this candidate's own answer then comes with none
    // waiting: the search fails on it (see close), whichever candidate was last.
    await new Promise((r) => setImmediate(r));
    if (this.ended) throw this.ended;
    const what = `the scorer server \`${this.command}\` (candidate ${candidate})`;
    return new Promise((resolve, reject) => {
      const timer = timeout(() => {
        this.waiting = undefined;
        reject(new StageInputError(`${what} took longer than ${this.s.timeoutMs / 1000} s (score_timeout) to answer; it was stopped${this.tail.text}`));
        this.ended ??= new StageInputError(`${what} was stopped after a timeout`);
        stopGroup(this.child.pid);
      }, this.s.timeoutMs);
      this.waiting = { resolve, reject, what, candidate, timer };
      this.child.stdin!.write(JSON.stringify({ model, candidate }) + '\n');
    });
  }

  /**
   * End of input: the server should exit; if it has not within 10 s, it is killed. Every line it
   * wrote is read by then: an answer that came with no candidate waiting fails the search.
   */
  async close(): Promise<void> {
    const timer = setTimeout(() => stopGroup(this.child.pid), 10_000);
    this.child.stdin!.end();
    await this.closed;
    clearTimeout(timer);
    if (this.stray) throw this.stray;
  }

}
