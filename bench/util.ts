import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/dfwe.js', import.meta.url));
/** The command as a project installs it (node_modules/.bin/dfwe): what a user's timings are of. */
export const LAUNCHER = fileURLToPath(new URL('../../bin/dfwe', import.meta.url));
export const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));

/**
 * Make this process's temporary directories (and those of what it starts: TMPDIR is inherited) in
 * one directory of its own, removed when it exits: the test suite and the benchmarks left theirs in
 * /tmp, 15,600 of them (76 GB) after some weeks of runs here, which filled the disk and slowed every
 * stat on the machine (a dentry cache of 5.4 million entries: 7.5 us a stat, 1.2 us once cleared).
 * DFWE_KEEP_TEMP=1 keeps it (and says where).
 */
export function ownTmpdir(prefix: string): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  // Open as /tmp is: a server a test starts as another user (Swift's, as swift) reaches its own
  // directories in it, and writes its temporary files there.
  chmodSync(root, 0o1777);
  process.env.TMPDIR = root;
  process.on('exit', () => {
    if (process.env.DFWE_KEEP_TEMP) return void process.stderr.write(`temporary directories kept in ${root}\n`);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        rmSync(root, { recursive: true, force: true });
        return;
      } catch {
        // A directory made read-only (for a user who is not root), or a process still writing: made
        // writable again, and tried again.
        spawnSync('chmod', ['-R', 'u+rwx', root]);
      }
    }
    process.stderr.write(`could not remove the temporary directories in ${root}\n`);
  });
  return root;
}

export function timeSync(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** Run the CLI; returns wall milliseconds (process start to exit, as a user sees it). */
export function dfweTimed(cwd: string, args: string[]): { ms: number; code: number; stdout: string; stderr: string } {
  const t = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, CI: 'true' }, encoding: 'utf8', maxBuffer: 1 << 28 });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`dfwe ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  return { ms, code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Median of `n` timings of fn. */
export function median(n: number, fn: () => number): number {
  return medianOf(Array.from({ length: n }, fn));
}

export function medianOf(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Spawn `/bin/sh -c cmd` for each command, `jobs` at a time: the work without any engine. */
export async function spawnPool(cmds: string[], cwd: string, jobs: number): Promise<number> {
  const t = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cmds.length) {
      const cmd = cmds[next++]!;
      await new Promise<void>((res, rej) => {
        const c = spawn('/bin/sh', ['-c', cmd], { cwd, stdio: 'ignore' });
        c.on('exit', (code) => (code === 0 ? res() : rej(new Error(`${cmd}: exit ${code}`))));
      });
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  return performance.now() - t;
}

export function writeResult(name: string, data: unknown): string {
  const path = join(RESULTS, `${name}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  return path;
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** Two-sided 95% Student t quantiles by degrees of freedom (1 to 10; 10's beyond, a slight overstatement). */
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

/** Mean, sample sd and the 95% t interval of the mean (paired differences give a paired interval). */
export function meanCi(xs: number[]): { mean: number; sd: number; ci95: [number, number] } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  const half = xs.length > 1 ? T95[Math.min(xs.length - 2, T95.length - 1)]! * (sd / Math.sqrt(xs.length)) : NaN;
  return { mean, sd, ci95: [mean - half, mean + half] };
}
