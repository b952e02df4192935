import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { UserError } from '../../diagnostics.js';
import { shellQuote } from '../../util/shell.js';
import type { Executor, ExecutorKind, Finished, Launch } from '../../executor.js';

/*
 * Each node is one batch job running the node's own command (for a built-in stage,
 * `dfwe exec SPEC`); the engine stays on the submitting machine, keeps the leases, and commits
 * outputs to the cache once the job has ended. Job state comes from squeue alone: no
 * accounting daemon (sacct) is needed. The workspace and cache must be on a filesystem that
 * every node sees at the same path.
 */

/** States after which a job never runs again (squeue's long names). */
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'REVOKED', 'SPECIAL_EXIT']);
const POLL_MIN_MS = 50;
const POLL_MAX_MS = 500;
/** squeue failing this long (controller down) fails the jobs in flight rather than waiting forever. */
const SQUEUE_OUTAGE_MS = 120_000;
/** A job squeue no longer lists after this many polls in a row has been purged (MinJobAge) unseen. */
const MISSING_POLLS = 5;
/** After Ctrl-C, how long to wait for cancelled jobs to end before leaving them. */
const CANCEL_WAIT_MS = 30_000;

/** Where and how long a node's job runs; `options` are passed to sbatch as they are. */
export interface SlurmOptions {
  partition?: string;
  time?: string;
  mem?: string;
  options?: string[];
}

const OPTIONS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    partition: { type: 'string', minLength: 1, description: 'sbatch --partition' },
    time: { type: 'string', minLength: 1, description: 'sbatch --time, e.g. 2:00:00; a job that runs over fails its node (TIMEOUT)' },
    mem: { type: 'string', minLength: 1, description: 'sbatch --mem, e.g. 8G' },
    options: { type: 'array', items: { type: 'string', pattern: '^-' }, description: 'More sbatch options, passed as they are, e.g. [--account=lab, --qos=high]' },
  },
};

/** One sbatch job per node; the engine stays here and commits what the jobs wrote. */
export const slurm: ExecutorKind = {
  name: 'slurm',
  description: 'one sbatch job per node (the workspace and cache must be on a filesystem every node sees)',
  allocatesResources: true,
  defaultJobs: 32,
  outputsVisibleWithinMs: 10_000,
  commandOutputIsProgress: true,
  optionsSchema: OPTIONS_SCHEMA,
  // A stage's settings override the pipeline's one by one; sbatch options add up.
  mergeOptions(pipeline = {}, stage = {}) {
    const p = pipeline as SlurmOptions;
    const st = stage as SlurmOptions;
    const options = [...(p.options ?? []), ...(st.options ?? [])];
    return { ...p, ...st, ...(options.length ? { options } : {}) };
  },
  connect: () => SlurmExecutor.connect(),
  cancel(job) {
    spawnSync('scancel', [String(job.id)], { stdio: 'ignore', timeout: 30_000 });
  },
  stopRun(runTag) {
    const q = spawnSync('squeue', ['-h', '-o', '%i %k'], { encoding: 'utf8', timeout: 30_000 });
    if (q.status !== 0 || typeof q.stdout !== 'string') return;
    const ids = q.stdout.split('\n').map((l) => l.trim().split(' ')).filter(([id, comment]) => id && comment?.startsWith(runTag)).map(([id]) => id!);
    if (ids.length > 0) spawnSync('scancel', ids, { stdio: 'ignore', timeout: 30_000 });
  },
};

/** sbatch options for a node: its resources and the pipeline's and stage's Slurm settings. */
export function sbatchArgs(l: Pick<Launch, 'nodeId' | 'tag' | 'cwd' | 'logPath' | 'resources' | 'options'>): string[] {
  const settings = l.options as SlurmOptions;
  // The comment carries the launch's tag: a job whose id never reached its lease is found by it.
  const args = ['--parsable', `--job-name=dfwe:${l.nodeId}`, `--comment=${l.tag}`, `--chdir=${l.cwd}`, `--output=${l.logPath.replaceAll('%', '%%')}`, '--open-mode=append', '--export=ALL'];
  const { cpu, gpu } = l.resources;
  if (cpu !== undefined && cpu > 0) args.push(`--cpus-per-task=${cpu}`);
  if (gpu !== undefined && gpu > 0) args.push(`--gres=gpu:${gpu}`);
  if (settings.partition) args.push(`--partition=${settings.partition}`);
  if (settings.time) args.push(`--time=${settings.time}`);
  if (settings.mem) args.push(`--mem=${settings.mem}`);
  args.push(...(settings.options ?? []));
  return args;
}

/** The batch script: exec, so Slurm's signals (scancel, time limit) reach the node's process. */
export function batchScript(argv: string[]): string {
  return `#!/bin/sh\nexec ${argv.map(shellQuote).join(' ')}\n`;
}

interface Tracked {
  launch: Launch;
  resolve: (f: Finished) => void;
  state?: string;
  host?: string;
  missing: number;
  logOffset: number;
  cancelledAt?: number;
}

interface JobRow {
  state: string;
  host: string;
  reason: string;
  /** A raw wait status, as Slurm stores it: 768 is exit code 3. */
  wait: number;
}

/** Loaded when the executor connects: planning with its kind never loads it. */
let execa: typeof import('execa').execa;

class SlurmExecutor implements Executor {
  private readonly jobs = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private delay = POLL_MIN_MS;
  private failingSince: number | undefined;
  private polling = false;

  /** Fails fast, with the reason, when this machine cannot talk to a Slurm controller. */
  static async connect(): Promise<SlurmExecutor> {
    ({ execa } = await import('execa'));
    const r = await execa('sinfo', ['-h', '-o', '%P'], { reject: false, timeout: 30_000 });
    if (r.exitCode !== 0) {
      const why = (r as { code?: string }).code === 'ENOENT' ? 'sinfo is not on PATH (is Slurm installed here?)' : String(r.stderr || r.message).trim();
      throw new UserError(`--executor slurm: cannot reach a Slurm controller: ${why}`);
    }
    return new SlurmExecutor();
  }

  async launch(l: Launch): Promise<Finished> {
    const sub = await execa('sbatch', sbatchArgs(l), { input: batchScript(l.argv), env: l.env, extendEnv: false, cwd: l.cwd, reject: false });
    if (sub.exitCode !== 0) {
      return { exitCode: null, reason: `sbatch refused the job: ${String(sub.stderr || sub.message).trim()}`, host: '' };
    }
    const id = String(sub.stdout).trim().split(';')[0]!;
    l.onHandle({ executor: 'slurm', id });
    l.onLine?.(`slurm job ${id} submitted`);
    const finished = new Promise<Finished>((resolve) => {
      this.jobs.set(id, { launch: l, resolve, missing: 0, logOffset: 0 });
    });
    const cancel = (): void => {
      const t = this.jobs.get(id);
      if (t) t.cancelledAt = Date.now();
      void execa('scancel', [id], { reject: false });
    };
    l.signal.addEventListener('abort', cancel, { once: true });
    if (l.signal.aborted) cancel(); // Ctrl-C came while sbatch ran
    this.delay = POLL_MIN_MS;
    this.schedule();
    try {
      return await finished;
    } finally {
      l.signal.removeEventListener('abort', cancel);
    }
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.polling || this.jobs.size === 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), this.delay);
  }

  private async poll(): Promise<void> {
    this.timer = undefined;
    this.polling = true;
    let changed = false;
    try {
      const ids = [...this.jobs.keys()];
      const rows = await queryJobs(ids);
      if (!rows) {
        this.failingSince ??= Date.now();
        if (Date.now() - this.failingSince > SQUEUE_OUTAGE_MS) {
          for (const id of ids) this.finish(id, { exitCode: null, reason: `squeue has failed for ${SQUEUE_OUTAGE_MS / 1000} s; job ${id} left as it is`, host: '' });
        }
        return;
      }
      this.failingSince = undefined;
      for (const id of ids) {
        const t = this.jobs.get(id)!;
        const row = rows.get(id);
        if (!row) {
          if (++t.missing >= MISSING_POLLS) this.finish(id, { exitCode: null, reason: `Slurm no longer lists job ${id} (purged before dfwe saw it end: is MinJobAge very short?)`, host: t.host ?? '' });
          continue;
        }
        t.missing = 0;
        if (row.state !== t.state) {
          changed = true;
          t.state = row.state;
          t.host = row.host || t.host;
          if (!TERMINAL.has(row.state)) t.launch.onLine?.(`slurm job ${id} ${row.state}${row.state === 'PENDING' && row.reason !== 'None' ? ` (${row.reason})` : ''}${row.host ? ` on ${row.host}` : ''}`);
        }
        if (row.state === 'RUNNING') this.forwardLog(t);
        if (TERMINAL.has(row.state)) this.finish(id, outcomeOf(id, row, t));
        else if (t.cancelledAt !== undefined && Date.now() - t.cancelledAt > CANCEL_WAIT_MS) {
          this.finish(id, { exitCode: null, reason: `job ${id} did not end within ${CANCEL_WAIT_MS / 1000} s of scancel`, host: t.host ?? '' });
        }
      }
    } finally {
      this.polling = false;
      this.delay = changed ? POLL_MIN_MS : Math.min(Math.round(this.delay * 1.5), POLL_MAX_MS);
      this.schedule();
    }
  }

  private finish(id: string, f: Finished): void {
    const t = this.jobs.get(id);
    if (!t) return;
    this.jobs.delete(id);
    t.resolve(f);
  }

  /** The last complete line the job added to its log since the previous poll, as progress. */
  private forwardLog(t: Tracked): void {
    if (!t.launch.onLine) return;
    const size = statSync(t.launch.logPath, { throwIfNoEntry: false })?.size ?? 0;
    if (size <= t.logOffset) return;
    const buf = Buffer.alloc(Math.min(size - t.logOffset, 64 * 1024));
    const fd = openSync(t.launch.logPath, 'r');
    try {
      readSync(fd, buf, 0, buf.length, size - buf.length);
    } finally {
      closeSync(fd);
    }
    const text = buf.toString('utf8');
    const end = text.lastIndexOf('\n');
    if (end < 0) return;
    t.logOffset = size - buf.length + Buffer.byteLength(text.slice(0, end + 1));
    const last = text.slice(0, end).split('\n').pop()!.trim();
    if (last) t.launch.onLine(last);
  }
}

function outcomeOf(id: string, row: JobRow, t: Tracked): Finished {
  const host = row.host || t.host || '';
  if (t.cancelledAt !== undefined) return { exitCode: null, reason: 'interrupted', host };
  const signal = row.wait & 0x7f;
  const exit = (row.wait >> 8) & 0xff;
  if (row.state === 'COMPLETED') return { exitCode: exit, host };
  if (row.state === 'FAILED' && signal === 0) return { exitCode: exit, host };
  const detail = row.state === 'FAILED' ? `killed by signal ${signal}` : row.reason && row.reason !== 'None' ? row.reason : '';
  return { exitCode: null, reason: `Slurm job ${id} ended ${row.state}${detail ? ` (${detail})` : ''}`, host };
}

/** One squeue call for every job in flight; undefined when squeue itself fails. */
async function queryJobs(ids: string[]): Promise<Map<string, JobRow> | undefined> {
  const r = await execa('squeue', ['-h', '--states=all', `--jobs=${ids.join(',')}`, '-O', 'JobID:|,State:|,BatchHost:|,Reason:|,exit_code:|'], { reject: false, timeout: 60_000 });
  if (r.exitCode !== 0) {
    // Every id purged at once makes squeue fail with "Invalid job id": that is an empty answer.
    return /Invalid job id/i.test(String(r.stderr)) ? new Map() : undefined;
  }
  const rows = new Map<string, JobRow>();
  for (const line of String(r.stdout).split('\n')) {
    const [id, state, host, reason, wait] = line.split('|').map((s) => s.trim());
    if (!id || !state) continue;
    rows.set(id, { state: state.split(' ')[0]!, host: host === 'n/a' || host === '(null)' ? '' : host ?? '', reason: reason ?? '', wait: Number(wait) || 0 });
  }
  return rows;
}
