import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { CacheStore } from '../cache/store.js';
import { writeAll } from '../util/fsx.js';
import type { GitState } from './git.js';
import type { Pair } from '../comparison.js';
import type { ReportSpec } from '../pipeline/types.js';
import type { FailureKind } from '../execute/runner.js';

/*
 * The run history: cache/runs/<run id>.jsonl, one file per run, only ever appended to. Its first
 * line says what the run was asked (pipeline, params, filters, git state), then one line per node
 * that executed or was restored as it finished, and a last line with the outcome. A run that is
 * killed leaves the lines it wrote; a line cut short by the kill is the last and is skipped when
 * read. Nodes served from the cache get no line each: the end line names the run's served set,
 * cache/runs/served/<digest>.json (every node's result key and metrics), stored by content so that
 * the many runs of an unchanged pipeline (watch, no-ops) share one.
 */

export const HISTORY_FORMAT = 1;

export interface StartLine {
  t: 'start';
  format: typeof HISTORY_FORMAT;
  id: string;
  command: 'run' | 'watch';
  startedAt: string;
  pid: number;
  /** The process's start time, so that a reused pid is not taken for the run's. */
  pidStart?: string;
  host: string;
  workspace: string;
  pipeline: string;
  name: string;
  pipelineDigest: string;
  variantKey: string;
  params: Record<string, unknown>;
  /** The `--param` values given, as given. */
  overrides: Record<string, unknown>;
  only: Record<string, string[]>;
  executor: string;
  jobs: number;
  nodes: number;
  /** The workspace's git commit and state, when it is in a git repository. */
  git?: GitState;
  /** A digest of every source file the run's nodes read, and each file's digest when there are few: what `runs` says was edited. */
  sourcesDigest?: string;
  sources?: Record<string, string>;
}

export interface NodeLine {
  t: 'node';
  id: string;
  stage: string;
  state: 'ran' | 'restored' | 'failed';
  /** Milliseconds from the run's start to the node's, and how long its processes ran. */
  start: number;
  ms: number;
  /** The job slot it ran in (0 = the first), as a timeline draws it; none for a restore. */
  lane?: number;
  host?: string;
  /** The GPUs it was given (CUDA_VISIBLE_DEVICES). */
  gpus?: string[];
  rss?: number;
  /** Why it failed (runner.ts's FailureKind), and what the message said. */
  kind?: FailureKind;
  error?: string;
}

export interface EndLine {
  t: 'end';
  endedAt: string;
  status: 'succeeded' | 'failed' | 'interrupted';
  ran: number;
  cached: number;
  restored: number;
  failed: number;
  skipped: number;
  /** The digest of the served set (runs/served/), when any node ran or was cached. */
  served?: string;
  /** The pipeline's report: its pairs and their average delta (the mean over tasks of each task's best). */
  report?: ReportSpec & { pairs: Pair[]; averageDelta?: number };
}

export type HistoryLine = StartLine | NodeLine | EndLine;

/** A served set: per node in pipeline order, its stage, the key of the result that served it and its metrics. */
export interface ServedSet {
  format: typeof HISTORY_FORMAT;
  /**
   * Each node's result. `outputs`, its outputs' digests by name (absent from sets written before
   * they were kept), let a later run key the nodes that read them without reading its record.
   */
  nodes: [id: string, stage: string, execKey: string, metrics: Record<string, number> | null, outputs?: Record<string, string> | null][];
}

export function runsDir(store: CacheStore): string {
  return join(store.root, 'runs');
}

export function servedPath(store: CacheStore, digest: string): string {
  return join(runsDir(store), 'served', `${digest}.json`);
}

function newRunId(at: Date): string {
  const iso = at.toISOString();
  return `${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}-${randomBytes(2).toString('hex')}`;
}

/** One run's history file, open for appending. */
export class RunLog {
  /** Undefined once closed: ended, or given up on (a write failed). */
  private fd: number | undefined;

  private constructor(
    readonly id: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Starts the file with its start line; undefined when the cache takes no history (read-only, full). */
  static open(store: CacheStore, start: Omit<StartLine, 't' | 'format' | 'id' | 'startedAt'>, at = new Date()): RunLog | undefined {
    try {
      mkdirSync(runsDir(store), { recursive: true });
      for (;;) {
        const id = newRunId(at);
        let fd: number;
        try {
          fd = openSync(join(runsDir(store), `${id}.jsonl`), 'wx', 0o644);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
          throw err;
        }
        const log = new RunLog(id, fd);
        log.append({ t: 'start', format: HISTORY_FORMAT, id, startedAt: at.toISOString(), ...start });
        return log;
      }
    } catch {
      return undefined;
    }
  }

  append(line: HistoryLine): void {
    if (this.fd === undefined) return;
    try {
      // Only this run writes its file, so its lines follow one another whole.
      writeAll(this.fd, Buffer.from(`${JSON.stringify(line)}\n`));
    } catch {
      // History explains; a full disk here must not fail the run.
      this.close();
    }
  }

  end(line: Omit<EndLine, 't' | 'endedAt'>): void {
    if (this.fd === undefined) return;
    this.append({ t: 'end', endedAt: new Date().toISOString(), ...line });
    if (this.fd !== undefined) {
      try {
        fsyncSync(this.fd);
      } catch {
        // the lines are written; durability is best effort here
      }
    }
    this.close();
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // nothing left to keep
    }
    this.fd = undefined;
  }
}
