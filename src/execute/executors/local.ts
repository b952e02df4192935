import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, appendFileSync, closeSync, constants, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localHost } from '../../cache/records.js';
import { processStart } from '../../util/process.js';
import { writeAll } from '../../util/fsx.js';
import { boundedLines } from '../../util/lines.js';
import type { Executor, ExecutorKind, Launch } from '../../executor.js';
import { trackMemory } from './memory-sampler.js';
import { PYTHON_SPAWNER } from './spawner-py.js';
import { stopTagged } from './tagged.js';
import { ownNodeEnv } from '../../util/handed-env.js';

/** How long a stage has to end after SIGTERM (Ctrl-C) before it is killed: `DFWE_STOP_GRACE` seconds, default 10. */
const STOP_GRACE_MS = (Number(process.env.DFWE_STOP_GRACE) || 10) * 1000;
/** How long processes a finished stage left behind get after SIGTERM before SIGKILL. */
const LEFTOVER_GRACE_MS = 1000;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It never started: spawn's error code. */
  error?: string;
  /** The starter found its group gone once it had reaped the leader: nothing of it is left to stop. */
  alone?: boolean;
}

/** A started process: its process group (its pid), once known, and how it ended. */
interface Started {
  pgid: Promise<number | undefined>;
  exit: Promise<Exit>;
  /** When the leader started (processStart), where the starter said it by the time pgid is known. */
  start?: string;
}

/**
 * Runs each node as a child process on this machine. Each leads its own process group, so
 * stopping a stage stops everything its shell started, and a launch returns only once the whole
 * group is gone: a background child (`cmd &`) can never write an output after it is committed.
 * A shell command is started by the spawner process (spawner.ts) so that the engine's thread does
 * not wait on the kernel; a built-in stage, whose output is read as progress, is started here.
 */
function localExecutor(): Executor {
  const spawner = new Spawner();
  return {
    async launch(l) {
      const started = l.onLine ? startHere(l) : spawner.start(l);
      let stopping = false;
      let finished = false;
      let escalate: NodeJS.Timeout | undefined;
      // A stage that traps SIGTERM gets a grace period, then SIGKILL: Ctrl-C never waits forever.
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        void started.pgid.then((pgid) => {
          if (pgid === undefined || finished) return;
          killGroup(pgid, 'SIGTERM');
          escalate = setTimeout(() => killGroup(pgid, 'SIGKILL'), STOP_GRACE_MS);
        });
      };
      l.signal.addEventListener('abort', stop, { once: true });
      if (l.signal.aborted) stop();
      let exit: Exit;
      let left = 0;
      let peakRssBytes: number | undefined;
      try {
        const pgid = await started.pgid;
        if (pgid !== undefined) l.onHandle({ executor: 'local', id: pgid, start: started.start ?? processStart(pgid) });
        const memory = pgid !== undefined ? trackMemory(pgid) : undefined;
        // The stage's own process has exited (its streams may still be held open by a child it left).
        try {
          exit = await started.exit;
        } finally {
          peakRssBytes = memory?.stop();
        }
        // Also when the spawner was lost with the stage running: nothing of it may outlive the launch.
        if (pgid !== undefined && !exit.alone) left = await endGroup(pgid, l.signal.aborted || exit.error ? 0 : LEFTOVER_GRACE_MS);
      } finally {
        finished = true;
        l.signal.removeEventListener('abort', stop);
        if (escalate) clearTimeout(escalate);
      }
      if (left > 0) appendFileSync(l.logPath, `dfwe: the stage left ${left} process${left === 1 ? '' : 'es'} running after it exited; stopped before its outputs were stored\n`);
      const reason = exit.error ? notStarted(exit.error) : exit.signal ? `killed by ${exit.signal}` : undefined;
      return { exitCode: exit.code, reason, host: localHost(), peakRssBytes };
    },
    close() {
      return spawner.close();
    },
  };
}

/**
 * Started in this process, its stdout (and its stderr, for `allOutput`) read line by line as
 * progress, in bounded memory, and written to the log as it comes.
 */
function startHere(l: Launch): Started {
  const log = openSync(l.logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(l.argv[0]!, l.argv.slice(1), { cwd: l.cwd, env: l.env, stdio: ['ignore', 'pipe', l.allOutput ? 'pipe' : log], detached: true });
  } catch (err) {
    closeSync(log);
    return { pgid: Promise.resolve(undefined), exit: Promise.resolve({ code: null, signal: null, error: (err as NodeJS.ErrnoException).code ?? 'EINVAL' }) };
  }
  // Each chunk goes to the log as it comes (stderr writes the log directly unless it is read too).
  const streams = [child.stdout!, ...(l.allOutput ? [child.stderr!] : [])];
  const ended = streams.map((s) => {
    s.on('data', (chunk: Buffer) => writeAll(log, chunk));
    boundedLines(s, (line) => l.onLine!(line));
    return new Promise((r) => (s.destroyed || s.readableEnded ? r(undefined) : s.once('close', r)));
  });
  const exit = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error: error.code ?? 'EINVAL' }));
  }).then(async (e) => {
    await Promise.all(ended);
    closeSync(log);
    return e;
  });
  return { pgid: Promise.resolve(child.pid), exit };
}

const SPAWNER = fileURLToPath(new URL('./spawner.js', import.meta.url));

/**
 * The process starter: the Python one where a python3 is found (spawner-py.ts: a sixth of a run of
 * trivial stages' CPU less), else the Node one; `DFWE_SPAWNER=node` chooses Node, `DFWE_PYTHON`
 * names the python3.
 */
function pythonStarter(): [string, string[]] | undefined {
  const python = process.env.DFWE_SPAWNER === 'node' ? undefined : process.env.DFWE_PYTHON || findPython();
  return python ? [python, ['-I', '-S', '-X', 'utf8', '-c', PYTHON_SPAWNER, process.execPath, SPAWNER]] : undefined;
}

/** Debian's python3 first (it starts fastest: no virtual environment), else the first on PATH. */
function findPython(): string | undefined {
  const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/'))];
  for (const d of dirs) {
    try {
      accessSync(join(d, 'python3'), constants.X_OK);
      return join(d, 'python3');
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A line from the starter: a stage's pid (with its start, from the Python starter), or how it ended. */
interface Answer {
  id: number;
  pid?: number;
  start?: string | null;
  exit?: [number | null, NodeJS.Signals | null];
  alone?: boolean;
  error?: string;
}

/** The engine's end of the spawner process (see spawner.ts). */
class Spawner {
  private child: ChildProcess | undefined;
  /** The environment the spawner was started with: each launch sends what differs from it. */
  private readonly base = { ...process.env };
  /** Launches not yet ended, with their request until the starter answers it. */
  private readonly waiting = new Map<number, { started: Started; pid: (pid: number | undefined) => void; exit: (e: Exit) => void; request?: string; tag: string; told?: true }>();
  private nextId = 1;
  private gone: string | undefined;
  /** A python3 that could not serve as the starter: the Node one from then on. */
  private python = pythonStarter();

  start(l: Launch): Started {
    const id = this.nextId++;
    let pid!: (pid: number | undefined) => void;
    let exit!: (e: Exit) => void;
    const started: Started = { pgid: new Promise((r) => (pid = r)), exit: new Promise((r) => (exit = r)) };
    if (this.gone) {
      pid(undefined);
      exit({ code: null, signal: null, error: this.gone });
      return started;
    }
    const env: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(l.env)) if (v !== undefined && this.base[k] !== v) env[k] = v;
    for (const k of Object.keys(this.base)) if (l.env[k] === undefined) env[k] = null;
    const request = `${JSON.stringify({ id, file: l.argv[0], args: l.argv.slice(1), cwd: l.cwd, env, log: l.logPath })}\n`;
    this.waiting.set(id, { started, pid, exit, request, tag: l.tag });
    this.process().stdin!.write(request);
    this.hold();
    return started;
  }

  /**
   * Ends the starter (its input closed) and resolves once it has exited (2 s at most): reaped by
   * this process, its CPU and its stages' count in this one's, as `time dfwe run` and a batch
   * system's accounting read them. Not waited for, it outlived a run whose end was busy.
   */
  close(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c) return Promise.resolve();
    c.stdin?.end();
    if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    c.ref();
    return new Promise((resolve) => {
      const giveUp = setTimeout(resolve, 2000);
      c.once('exit', () => {
        clearTimeout(giveUp);
        resolve();
      });
    });
  }

  private process(): ChildProcess {
    if (this.child) return this.child;
    const [file, args] = this.python ?? [process.execPath, [SPAWNER]];
    // Its own environment, not what it is told its stages' is (that is the first line's `base`).
    const child = spawn(file, args, { env: ownNodeEnv(this.base), stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    child.stdin!.write(`${JSON.stringify({ base: this.base })}\n`);
    let partial = '';
    let ready = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const m = JSON.parse(line) as Answer & { ready?: true };
        if (m.ready) ready = true;
        else this.answer(m);
      }
    });
    const lost = (killed: boolean): void => {
      // Its second event ('error', then 'close'), once the Node starter has taken over.
      if (this.child !== undefined && this.child !== child) return;
      this.child = undefined;
      // A python3 that could not start, or ended by itself before it was ready, started nothing: the
      // Node starter takes over its requests. (One killed is lost like any starter killed.)
      if (!ready && !killed && this.python) {
        process.stderr.write(`dfwe: ${this.python[0]} could not start stages (set DFWE_PYTHON, or DFWE_SPAWNER=node); starting them from Node\n`);
        this.python = undefined;
        const next = this.process();
        for (const w of this.waiting.values()) next.stdin!.write(w.request!);
        this.hold();
        return;
      }
      // A spawner that is gone (killed): what it started is lost to this run, and said so. A stage
      // it started without saying so yet is found by its tag and stopped first: nothing may write
      // a node's outputs once its launch has returned.
      this.gone = 'SPAWNER';
      const untold = new Set([...this.waiting.values()].filter((w) => !w.told).map((w) => w.tag));
      if (untold.size > 0) stopTagged((t) => untold.has(t));
      for (const w of this.waiting.values()) {
        w.pid(undefined);
        w.exit({ code: null, signal: null, error: 'SPAWNER' });
      }
      this.waiting.clear();
    };
    // On 'close', not 'exit': 'exit' may come before the last lines it wrote are read, and a stage
    // whose pid was in them would be left running, its group never stopped (seen once in CI).
    child.once('close', (_code, signal) => lost(signal !== null));
    child.once('error', () => lost(false));
    child.stdin!.on('error', () => {});
    return child;
  }

  private answer(m: Answer): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    w.request = undefined;
    if (m.pid !== undefined) {
      w.told = true;
      if (typeof m.start === 'string') w.started.start = m.start;
      w.pid(m.pid);
      return;
    }
    this.waiting.delete(m.id);
    w.pid(undefined);
    w.exit(m.error ? { code: null, signal: null, error: m.error } : { code: m.exit![0], signal: m.exit![1], alone: m.alone === true });
    this.hold();
  }

  /** The spawner keeps this process alive only while a process it started runs. */
  private hold(): void {
    const c = this.child;
    if (!c) return;
    const streams = [c.stdin, c.stdout] as unknown as { ref(): void; unref(): void }[];
    if (this.waiting.size > 0) {
      c.ref();
      for (const s of streams) s.ref();
    } else {
      c.unref();
      for (const s of streams) s.unref();
    }
  }
}

/** Why a process never started (spawn's error code), said for a person. */
function notStarted(code: string): string {
  if (code === 'SPAWNER') return "it was lost: dfwe's process starter stopped";
  if (code === 'E2BIG') return 'it could not start: the command line is longer than the system allows (128 KiB for one argument, the shell command); pass long lists through a file or a glob';
  if (code === 'ENOENT') return 'it could not start: the program was not found';
  return `it could not start (${code})`;
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
  description: 'child processes on this machine (the default)',
  allocatesResources: false,
  outputsVisibleWithinMs: 0,
  commandOutputIsProgress: false,
  connect: async () => localExecutor(),
  cancel(job, holderHost) {
    if (holderHost !== localHost() || typeof job.id !== 'number') return;
    // A dead run's job: its group is stopped, unless its leader's pid now belongs to a process
    // started since (pids wrap at 32,768 here within minutes), which would be someone else's.
    // While any process of the old group lives, its id cannot be given to a new process.
    const now = processStart(job.id);
    if (job.start !== undefined && now !== undefined && now !== job.start) return;
    killGroup(job.id, 'SIGKILL');
  },
  stopRun(runTag, holderHost) {
    if (holderHost === localHost()) stopTagged((t) => t.startsWith(runTag));
  },
};
