import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface GitState {
  commit: string;
  /** Tracked files under the workspace differ from the commit (untracked files do not count, as for `git describe --dirty`). */
  dirty: boolean;
}

function insideRepository(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if (statSync(join(d, '.git'), { throwIfNoEntry: false })) return true;
    if (dirname(d) === d) return false;
  }
}

function git(cwd: string, args: string[]): Promise<string | undefined> {
  // No optional locks: a status never rewrites the index. No fsmonitor: a repository's config
  // cannot make dfwe start a program.
  return new Promise((resolve) => {
    execFile('git', ['-c', 'core.fsmonitor=false', '--no-optional-locks', ...args], { cwd, timeout: 10_000, maxBuffer: 1 << 20 }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

/** The commit the workspace is at and whether its tracked files changed; undefined outside a git repository (or without git). */
export async function gitState(workspace: string): Promise<GitState | undefined> {
  if (!insideRepository(workspace)) return undefined;
  const [head, status] = await Promise.all([git(workspace, ['rev-parse', 'HEAD']), git(workspace, ['status', '--porcelain', '--untracked-files=no', '--', '.'])]);
  if (head === undefined || status === undefined) return undefined;
  return { commit: head.trim(), dirty: status.trim() !== '' };
}
