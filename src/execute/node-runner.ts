import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { outputLeaseName, type Lease, type LeaseHolder, type LeaseManager } from '../cache/lease.js';
import { localHost, type NodeRecord, type OutputEntry } from '../cache/store.js';
import type { NodeDef } from '../pipeline/expand.js';
import type { Fingerprint } from '../keys/fingerprint.js';
import { computeKeys, type NodeKeys, type UpstreamInfo } from '../plan.js';
import type { Project } from '../project.js';
import type { NodeSpec } from './node-spec.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

export type Outcome =
  | { status: 'cached'; record: NodeRecord; restored: boolean }
  | { status: 'ran'; record: NodeRecord }
  | { status: 'failed'; error: string; logTail: string; exitCode?: number | null };

let nodeCounter = 0;

export interface RunContext {
  project: Project;
  /** This run's staging directory (cache/tmp/run-PID-…). */
  staging: string;
  leases: LeaseManager;
  force: ReadonlySet<string>;
  runtime?: Record<string, string>;
  signal: AbortSignal;
  onWait?: (id: string, holder: LeaseHolder) => void;
  onStart?: (id: string) => void;
  /** A line a built-in stage printed (epoch, loss), for the progress display. */
  onProgress?: (id: string, line: string) => void;
}

/** Serve a cached result: the record, with its outputs restored into the workspace if needed. */
function serveCached(project: Project, execKey: string): Outcome | undefined {
  const record = project.store.readRecord(execKey);
  if (!record) return undefined;
  const check = project.store.checkRecord(record, project.workspace);
  if (!check.usable) {
    project.store.quarantineModified(record);
    return undefined;
  }
  if (check.restore) for (const o of Object.values(record.outputs)) project.store.materialize(join(project.workspace, o.path), o);
  return { status: 'cached', record, restored: check.restore };
}

/** Cache lookup without side effects beyond restoring outputs; undefined when the node must run. */
export function tryCached(ctx: RunContext, node: NodeDef, upstream: Map<string, UpstreamInfo>): { outcome?: Outcome; keys: NodeKeys } {
  const keys = computeKeys(ctx.project, node, upstream, ctx.runtime);
  const outcome = ctx.force.has(node.id) ? undefined : serveCached(ctx.project, keys.execKey!);
  return { outcome, keys };
}

/** Run a node that missed the cache (keys from tryCached). */
export async function runNode(ctx: RunContext, node: NodeDef, keys: NodeKeys): Promise<Outcome> {
  const { project } = ctx;
  const { planKey, execFingerprint } = keys;
  const execKey = keys.execKey!;

  // A lease per workspace output path: no two runs execute this node at once, and no two
  // versions of it write the same file at once. A node without outputs leases its key. Sorted,
  // so runs never deadlock.
  const outs = Object.values(node.outs);
  const names = outs.length > 0 ? outs.map((p) => outputLeaseName(project.workspace, p)).sort() : [`key-${execKey}`];
  const held: Lease[] = [];
  try {
    for (const n of names) held.push(await ctx.leases.acquire(n, node.id, (h) => ctx.onWait?.(node.id, h), ctx.signal));
    if (!ctx.force.has(node.id)) {
      const cached = serveCached(project, execKey); // another run may have finished it while we waited
      if (cached) return cached;
    }
    ctx.onStart?.(node.id);
    return await execute(ctx, node, planKey, execKey, execFingerprint!, (pgid) => held.forEach((l) => l.setGroup(pgid)));
  } finally {
    for (const l of held) l.release();
  }
}

async function execute(ctx: RunContext, node: NodeDef, planKey: string, execKey: string, fp: Fingerprint, onSpawn: (pgid: number) => void): Promise<Outcome> {
  const { project } = ctx;
  const { store, workspace } = project;
  // Node files live in the run's staging directory, named by a per-run counter: no directory is
  // created or removed per node.
  const stem = join(ctx.staging, String(nodeCounter++));
  const logPath = `${stem}.log`;
  const specPath = `${stem}.spec.json`;
  const metricsPath = `${stem}.metrics.json`;
  const startedAt = new Date();
  const t0 = performance.now();
  // Most trivial stages print nothing: an empty log is not worth an object.
  const storeLog = (path: string): string | undefined => (statSync(path, { throwIfNoEntry: false })?.size ? store.putBlob(path) : undefined);
  const fail = (error: string, exitCode?: number | null): Outcome => {
    let log: string | undefined;
    let logTail = '';
    if (existsSync(logPath)) {
      logTail = tail(readFileSync(logPath, 'utf8'), 20);
      log = storeLog(logPath);
    }
    store.writeAttempt(workspace, {
      nodeId: node.id, status: 'failed', execKey, planKey, at: startedAt.toISOString(), durationMs: performance.now() - t0,
      exitCode, error, log, host: localHost(), fingerprint: fp,
    });
    return { status: 'failed', error, logTail, exitCode };
  };
  try {
    // Stale outputs must not pass for fresh ones: remove them before the stage runs.
    for (const p of Object.values(node.outs)) {
      const abs = join(workspace, p);
      rmSync(abs, { recursive: true, force: true });
      mkdirSync(dirname(abs), { recursive: true });
    }
    let child;
    {
      // Both streams append to one log, so it reads in the order the stage printed. Each stage
      // leads its own process group, so stopping it stops everything its shell started.
      const logFile = { file: logPath, append: true } as const;
      const common = { cwd: workspace, stdin: 'ignore', stdout: logFile, stderr: logFile, reject: false, detached: true } as const;
      const env = { ...process.env, ...node.env, DFWE_NODE: node.id, DFWE_WORKSPACE: workspace };
      // The env above is complete: execa need not merge process.env again for every node.
      if (node.type === 'cmd') {
        child = execa(node.command!, { ...common, shell: '/bin/sh', env });
      } else {
        const spec: NodeSpec = {
          format: 1, nodeId: node.id, type: node.type, version: node.version, params: node.params, workspace,
          outs: Object.fromEntries(Object.entries(node.outs).map(([k, p]) => [k, join(workspace, p)])),
          outKinds: node.outKinds, metricsPath, runtime: ctx.runtime,
        };
        writeFileSync(specPath, JSON.stringify(spec));
        // stdout goes to the log and, line by line, to the progress display.
        child = execa(process.execPath, [CLI, 'exec', specPath], { ...common, env, stdout: ['pipe', logFile], buffer: false });
      }
    }
    const pgid = child.pid;
    if (pgid !== undefined) onSpawn(pgid);
    const lines = node.type === 'cmd' ? undefined : (async () => {
      for await (const line of child.iterable()) ctx.onProgress?.(node.id, String(line));
    })().catch(() => undefined);
    const stop = (): void => killGroup(pgid, 'SIGTERM');
    ctx.signal.addEventListener('abort', stop, { once: true });
    let result;
    try {
      result = await child;
      await lines;
    } finally {
      ctx.signal.removeEventListener('abort', stop);
    }
    if (ctx.signal.aborted) {
      killGroup(pgid, 'SIGKILL');
      return fail('interrupted', null);
    }
    if (result.exitCode !== 0) {
      const why = result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`;
      return fail(`${node.type === 'cmd' ? 'command' : `stage ${node.type}`} failed (${why})`, result.exitCode);
    }
    const outputs: Record<string, OutputEntry> = {};
    for (const [name, p] of Object.entries(node.outs)) {
      const abs = join(workspace, p);
      let st;
      try {
        st = statSync(abs);
      } catch {
        return fail(`did not write its declared output "${name}" (${p})`, 0);
      }
      const kind = node.outKinds[name];
      if ((kind === 'file' && !st.isFile()) || (kind === 'dir' && !st.isDirectory())) return fail(`output "${name}" (${p}) should be a ${kind}`, 0);
      outputs[name] = store.ingestOutput(abs, p);
    }
    const metrics = existsSync(metricsPath) ? (JSON.parse(readFileSync(metricsPath, 'utf8')) as Record<string, number>) : undefined;
    const log = storeLog(logPath);
    const durationMs = performance.now() - t0;
    const record: NodeRecord = {
      format: 1, nodeId: node.id, planKey, execKey, fingerprint: fp, outputs, log, metrics,
      startedAt: startedAt.toISOString(), durationMs, host: localHost(),
    };
    store.writeRecord(record);
    store.writeAttempt(workspace, { nodeId: node.id, status: 'succeeded', execKey, planKey, at: record.startedAt, durationMs, log, host: record.host, fingerprint: fp });
    return { status: 'ran', record };
  } catch (err) {
    return fail(`dfwe could not run it: ${(err as Error).message}`);
  } finally {
    for (const p of [logPath, specPath, metricsPath]) rmSync(p, { force: true });
  }
}

function killGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group has exited
  }
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

