import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { ownTmpdir } from '../bench/util.js';

export const BIN = fileURLToPath(new URL('../../bin/dfwe.js', import.meta.url));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

// A test file's temporary directories, and those of the dfwe it starts, go when it exits.
ownTmpdir('dfwe-tests-');

/** A fresh temporary workspace holding `files`. */
export function workspace(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-test-'));
  for (const [p, text] of Object.entries(files)) write(dir, p, text);
  return dir;
}

export function write(dir: string, path: string, text: string): void {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), text);
}

export function read(dir: string, path: string): string {
  return readFileSync(join(dir, path), 'utf8');
}

/** The file's text, or '' while it does not exist (an output is removed while its stage reruns). */
export function readNow(dir: string, path: string): string {
  try {
    return readFileSync(join(dir, path), 'utf8');
  } catch {
    return '';
  }
}

/**
 * Why strace cannot watch a test's system calls here, or false when it can. CI installs strace and
 * sets DFWE_TEST_STRACE=required, so there a test that needs it cannot skip; elsewhere a machine
 * without strace, or one that forbids ptrace, skips it.
 */
export const straceProblem = ((): string | false => {
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=none', 'true'], { encoding: 'utf8' });
  const problem = r.error ? 'strace is not installed' : r.status !== 0 ? `strace cannot trace here: ${r.stderr.trim()}` : false;
  if (problem && process.env.DFWE_TEST_STRACE === 'required') throw new Error(`DFWE_TEST_STRACE=required but ${problem}`);
  return problem;
})();

/** The environment a test's dfwe runs in: this one's, plain output, no cache of the caller's. */
export const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
  delete env.DFWE_CACHE;
  return env;
};

/** Run the real CLI in `cwd`. */
export function dfwe(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env: { ...baseEnv(), ...env }, encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const IMPORT_TRACE = fileURLToPath(new URL('./import-trace/register.js', import.meta.url));

/** Run the CLI and list the modules it loaded (file URLs; see import-trace/register.ts). */
export function dfweTraced(cwd: string, args: string[]): CliResult & { modules: string[] } {
  const trace = join(mkdtempSync(join(tmpdir(), 'dfwe-trace-')), 'modules.txt');
  const r = dfwe(cwd, args, { NODE_OPTIONS: `--import=${IMPORT_TRACE}`, DFWE_IMPORT_TRACE: trace });
  let modules: string[] = [];
  try {
    modules = readFileSync(trace, 'utf8').split('\n').filter((l) => l.startsWith('file://'));
  } catch {
    // the process died before it loaded anything
  }
  rmSync(dirname(trace), { recursive: true, force: true });
  return { ...r, modules };
}

/** Start the CLI without waiting; resolves on exit. */
export function dfweAsync(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...baseEnv(), ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr })));
  return { child, done, output: () => stderr + stdout };
}

/** Node ids that a run executed (its plain "run" lines). */
export function ran(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => l.startsWith('run     ')).map((l) => l.slice(8).trim()).sort();
}

/** Every file below a directory (relative paths), or [] when it does not exist. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(p).isDirectory()) walk(p, r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

export async function waitFor(cond: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A small tmpfs mounted at a fresh directory for one test, unmounted after it: a real full disk
 * (or, remounted read-only, a real read-only cache). Needs root: elsewhere the test is skipped,
 * but CI sets DFWE_TEST_TMPFS=required, so there it cannot skip.
 */
export function smallDisk(t: TestContext, size = '1m'): { dir: string; remount(opts: string): void } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-disk-'));
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    if (process.env.DFWE_TEST_TMPFS === 'required') throw new Error('DFWE_TEST_TMPFS=required but a tmpfs could not be mounted');
    t.skip('cannot mount a tmpfs here (needs root)');
    return undefined;
  }
  t.after(() => {
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    remount: (opts) => {
      const r = spawnSync('mount', ['-o', `remount,${opts}`, dir], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`remount ${opts} failed: ${r.stderr}`);
    },
  };
}

/** Flip one byte of a node's cached output (its output "f") in place and put the seal back, as bit rot would. */
export function rot(ws: string, node: string): string {
  const show = spawnSync(process.execPath, [BIN, 'show', node, '--json'], { cwd: ws, env: baseEnv(), encoding: 'utf8' });
  const digest = JSON.parse(show.stdout).record.outputs.f.digest as string;
  const obj = join(ws, 'cache/objects', digest.slice(0, 2), digest);
  const bytes = readFileSync(obj);
  bytes[0] = bytes[0]! ^ 0xff;
  chmodSync(obj, 0o644);
  writeFileSync(obj, bytes);
  chmodSync(obj, 0o444);
  const sealed = new Date(Date.UTC(2000, 0, 1));
  utimesSync(obj, sealed, sealed);
  return digest;
}

/** An empty dfwe cache at `dir` (made and marked as dfwe makes one), for tests that plant files in it before a run. */
export function markedCache(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'CACHEDIR.TAG'), 'Signature: 8a477f597d28d172789f06886806bc55\ndfwe-cache-format: 1\n');
  return dir;
}

/** A one-tensor ("w") F32 safetensors file's bytes, written from the format's description. */
export function oneTensorModel(values: number[]): Buffer {
  return safetensorsBytes({ w: ['F32', values] });
}

/** A safetensors file's bytes: 1-D tensors by name, F32, or BF16 (values it holds exactly, given as numbers). */
export function safetensorsBytes(tensors: Record<string, [dtype: 'F32' | 'BF16', values: number[]]>): Buffer {
  let offset = 0;
  const header: Record<string, unknown> = {};
  const blobs: Buffer[] = [];
  for (const [name, [dtype, values]] of Object.entries(tensors)) {
    const f32 = new Float32Array(values);
    const raw = dtype === 'F32' ? Buffer.from(f32.buffer) : Buffer.from(new Uint16Array(new Uint32Array(f32.buffer).map((b) => b >>> 16)).buffer);
    header[name] = { dtype, shape: [values.length], data_offsets: [offset, offset + raw.length] };
    blobs.push(raw);
    offset += raw.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...blobs]);
}

/** Python (standard library only) that reads a safetensors checkpoint and scores it by its distance to TARGET: evaluators for merge-search tests. */
export const READER = `import json, os, struct, sys
def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, sorted(f for f in os.listdir(path) if f.endswith('.safetensors'))[0])
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: struct.unpack('<%df' % v['shape'][0], b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]) for k, v in h.items() if k != '__metadata__'}
TARGET = [0.2, 0.5, 0.3]
def score(path):
    w = load(path)['w']
    return {'score': -sum((x - t) ** 2 for x, t in zip(w, TARGET)), 'loss': 0.0}
`;
