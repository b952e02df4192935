import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';

/*
 * The local executor's process starter, a small process of its own. Starting a process from the
 * engine blocks the engine's one thread for as long as the kernel takes to copy it (fork() of a
 * process of hundreds of MB: ≈1.8 ms a node, half the engine's time in a sweep of trivial
 * stages). Here that copy is of a small process, on the other core, while the engine goes on.
 *
 * The first JSON line in is { base }: the engine's environment. Then one line per process to
 * start: { id, file, args, cwd, env, log }, where env holds only what differs from base (null:
 * removed). One line out when it started ({ id, pid }), one when it ended ({ id, exit: [code,
 * signal] }) or could not start ({ id, error }). Each process leads its own session and process
 * group, as the engine's own would. Ends when its input ends (the engine exited, or was killed),
 * first killing the groups of the processes still running: an engine that ends normally has seen
 * them all end, and one that was killed can commit nothing of theirs, while they would go on
 * writing outputs that the next run takes over. A Ctrl-C is the engine's to handle, not this
 * process's. Where a python3 is found, spawner-py.ts
 * speaks the same protocol in its place, with posix_spawn instead of fork().
 */

interface Request {
  id: number;
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string | null>;
  log: string;
}

/** The environment requests are told relative to: the engine's, its first line. */
let base: NodeJS.ProcessEnv | undefined;
/** Started processes that have not exited: each leads its own group. */
const running = new Set<number>();
const say = (message: object): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};

function start(r: Request): void {
  const env: Record<string, string | undefined> = { ...base };
  for (const [k, v] of Object.entries(r.env)) {
    if (v === null) delete env[k];
    else env[k] = v;
  }
  let log: number;
  try {
    log = openSync(r.log, 'a');
  } catch (err) {
    say({ id: r.id, error: (err as NodeJS.ErrnoException).code ?? 'EIO' });
    return;
  }
  let child: ChildProcess;
  try {
    child = spawn(r.file, r.args, { cwd: r.cwd, env, stdio: ['ignore', log, log], detached: true });
  } catch (err) {
    say({ id: r.id, error: (err as NodeJS.ErrnoException).code ?? 'EINVAL' });
    return;
  } finally {
    closeSync(log);
  }
  let ended = false;
  const pid = child.pid;
  if (pid !== undefined) {
    running.add(pid);
    say({ id: r.id, pid });
  }
  child.once('exit', (code, signal) => {
    if (pid !== undefined) running.delete(pid);
    if (!ended) say({ id: r.id, exit: [code, signal] });
    ended = true;
  });
  child.once('error', (err: NodeJS.ErrnoException) => {
    if (!ended) say({ id: r.id, error: err.code ?? 'EINVAL' });
    ended = true;
  });
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});
createInterface({ input: process.stdin, crlfDelay: Infinity }).on('line', (line) => {
  const message = JSON.parse(line) as Request | { base: NodeJS.ProcessEnv };
  if ('base' in message) base = message.base;
  else start(message);
});
function endAll(): never {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group has ended
    }
  }
  process.exit(0);
}
process.stdin.on('end', endAll);
// The engine is gone when what it reads is: the same end, whichever is noticed first.
process.stdout.on('error', endAll);
