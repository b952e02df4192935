import { execa } from 'execa';
import { localHost } from '../cache/store.js';
import type { SlurmOptions } from '../pipeline/expand.js';

/** One process to run for a node: the engine has written its spec and cleared its outputs. */
export interface Launch {
  nodeId: string;
  argv: string[];
  cwd: string;
  /** The complete environment of the process. */
  env: Record<string, string | undefined>;
  /** stdout and stderr both go here, in the order printed. */
  logPath: string;
  resources: Record<string, number>;
  slurm: SlurmOptions;
  signal: AbortSignal;
  /** How to stop what was launched if this run dies and another breaks its lease. */
  onHandle: (handle: { group?: number; slurmJob?: string }) => void;
  /** A progress line: the stage's own output (local) or the job's state (Slurm). */
  onLine?: (line: string) => void;
}

export interface Finished {
  /** Null when the process was killed or the job never ran to an exit. */
  exitCode: number | null;
  /** Why it did not exit cleanly, when the exit code does not say it (signal, Slurm state). */
  reason?: string;
  /** Where it ran: this machine, or the Slurm node. */
  host: string;
}

export interface Executor {
  readonly name: 'local' | 'slurm';
  launch(l: Launch): Promise<Finished>;
  /** Stop polling and the like; jobs in flight were cancelled through their signals. */
  close(): void;
}

/**
 * Runs each node as a child process on this machine. Each leads its own process group, so
 * stopping a stage stops everything its shell started.
 */
export const localExecutor: Executor = {
  name: 'local',
  async launch(l) {
    const logFile = { file: l.logPath, append: true } as const;
    // The env is complete: execa need not merge process.env again for every node.
    const child = execa(l.argv[0]!, l.argv.slice(1), {
      cwd: l.cwd, env: l.env, extendEnv: false, stdin: 'ignore', stderr: logFile, reject: false, detached: true, buffer: false,
      stdout: l.onLine ? ['pipe', logFile] : logFile,
    });
    const pgid = child.pid;
    if (pgid !== undefined) l.onHandle({ group: pgid });
    const lines = l.onLine ? (async () => {
      for await (const line of child.iterable()) l.onLine!(String(line));
    })().catch(() => undefined) : undefined;
    const stop = (): void => killGroup(pgid, 'SIGTERM');
    l.signal.addEventListener('abort', stop, { once: true });
    if (l.signal.aborted) stop();
    let result;
    try {
      result = await child;
      await lines;
    } finally {
      l.signal.removeEventListener('abort', stop);
    }
    // A stage that ignores SIGTERM, or a child it left behind, must not outlive the run.
    if (l.signal.aborted) killGroup(pgid, 'SIGKILL');
    return { exitCode: result.exitCode ?? null, reason: result.signal ? `killed by ${result.signal}` : undefined, host: localHost() };
  },
  close() {},
};

function killGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group has exited
  }
}
