import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { localHost } from '../../cache/records.js';
import type { Executor, ExecutorKind } from '../executor.js';

/** How long a stage has to end after SIGTERM (Ctrl-C) before it is killed: `DFWE_STOP_GRACE` seconds, default 10. */
const STOP_GRACE_MS = (Number(process.env.DFWE_STOP_GRACE) || 10) * 1000;
/** How long processes a finished stage left behind get after SIGTERM before SIGKILL. */
const LEFTOVER_GRACE_MS = 1000;

/**
 * Runs each node as a child process on this machine. Each leads its own process group, so
 * stopping a stage stops everything its shell started, and a launch returns only once the whole
 * group is gone: a background child (`cmd &`) can never write an output after it is committed.
 */
const localExecutor: Executor = {
  async launch(l) {
    // node:child_process directly: execa's option handling and abort plumbing added ≈0.4 ms a
    // node to a 0.9 ms spawn (measured), and a sweep spawns tens of thousands.
    const log = openSync(l.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(l.argv[0]!, l.argv.slice(1), { cwd: l.cwd, env: l.env, stdio: ['ignore', l.onLine ? 'pipe' : log, log], detached: true });
    } catch (err) {
      closeSync(log);
      return { exitCode: null, reason: notStarted(err as NodeJS.ErrnoException), host: localHost() };
    }
    const pgid = child.pid;
    if (pgid !== undefined) l.onHandle({ executor: 'local', id: pgid });
    // With a progress reader the stage's stdout is a pipe: each chunk goes to the log as it
    // comes (in order with stderr, which writes the log directly) and complete lines to onLine.
    let partial = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      writeAll(log, chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const line of lines) l.onLine!(line);
    });
    let escalate: NodeJS.Timeout | undefined;
    // A stage that traps SIGTERM gets a grace period, then SIGKILL: Ctrl-C never waits forever.
    const stop = (): void => {
      killGroup(pgid, 'SIGTERM');
      escalate ??= setTimeout(() => killGroup(pgid, 'SIGKILL'), STOP_GRACE_MS);
    };
    l.signal.addEventListener('abort', stop, { once: true });
    if (l.signal.aborted) stop();
    let exit: { code: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException };
    let left = 0;
    try {
      // The stage's own process has exited (its streams may still be held open by a child it left).
      exit = await new Promise((resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal }));
        child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
      });
      if (!exit.error) left = await endGroup(pgid, l.signal.aborted ? 0 : LEFTOVER_GRACE_MS);
      if (child.stdout && !child.stdout.destroyed && !child.stdout.readableEnded) await new Promise((r) => child.stdout!.once('close', r));
      if (partial) l.onLine!(partial);
    } finally {
      l.signal.removeEventListener('abort', stop);
      if (escalate) clearTimeout(escalate);
      closeSync(log);
    }
    if (left > 0) appendFileSync(l.logPath, `dfwe: the stage left ${left} process${left === 1 ? '' : 'es'} running after it exited; stopped before its outputs were stored\n`);
    const reason = exit.error ? notStarted(exit.error) : exit.signal ? `killed by ${exit.signal}` : undefined;
    return { exitCode: exit.code, reason, host: localHost() };
  },
  close() {},
};

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** Why a process never started (spawn's error code), said for a person. */
function notStarted(r: { code?: string }): string {
  if (!r.code) return 'it could not start';
  if (r.code === 'E2BIG') return 'it could not start: the command line is longer than the system allows (128 KiB for one argument, the shell command); pass long lists through a file or a glob';
  if (r.code === 'ENOENT') return 'it could not start: the program was not found';
  return `it could not start (${r.code})`;
}

function killGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group has exited
  }
}

/**
 * Stop what is left of a process group (SIGTERM, `graceMs`, SIGKILL) and wait until none of it
 * runs. Returns how many processes were left. Zombies are gone for this purpose: they run no code.
 */
async function endGroup(pgid: number | undefined, graceMs: number): Promise<number> {
  if (pgid === undefined) return 0;
  const first = groupMembers(pgid).length;
  if (first === 0) return 0;
  killGroup(pgid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  const until = Date.now() + graceMs;
  while (groupMembers(pgid).length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; groupMembers(pgid).length > 0; i++) {
    killGroup(pgid, 'SIGKILL');
    if (i > 500) break; // 10 s: a process in uninterruptible sleep; nothing more can be done
    await new Promise((r) => setTimeout(r, 20));
  }
  return first;
}

/** Live (not zombie) processes of a group: none when kill(-pgid, 0) finds no one at all. */
function groupMembers(pgid: number): number[] {
  try {
    process.kill(-pgid, 0);
  } catch {
    return [];
  }
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [pgid]; // no /proc: the group exists, take it as live
  }
  const live: number[] = [];
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') live.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return live;
}

/** Child processes on this machine, as many at once as --jobs and the resource tokens allow. */
export const local: ExecutorKind = {
  name: 'local',
  description: 'child processes on this machine the default',
  allocatesResources: false,
  outputsVisibleWithinMs: 0,
  commandOutputIsProgress: false,
  connect: async () => localExecutor,
  cancel(job, holderHost) {
    if (holderHost === localHost() && typeof job.id === 'number') killGroup(job.id, 'SIGKILL');
  },
};
