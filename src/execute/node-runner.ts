import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { LeaseManager, type Lease, type LeaseHolder } from '../cache/lease.js';
import { localHost, type NodeRecord, type OutputEntry } from '../cache/store.js';
import type { NodeDef } from '../pipeline/expand.js';
import type { Fingerprint } from '../keys/fingerprint.js';
import { computeKeys, type NodeKeys, type UpstreamInfo } from '../plan.js';
import type { Project } from '../project.js';
import { keyOf } from '../util/hash.js';
import type { NodeSpec } from './node-spec.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

export type Outcome =
  | { status: 'cached'; record: NodeRecord; restored: boolean }
  | { status: 'ran'; record: NodeRecord }
  | { status: 'failed'; error: string; logTail: string; exitCode?: number | null };

export interface RunContext {
  project: Project;
  leases: LeaseManager;
  force: ReadonlySet<string>;
  runtime?: Record<string, string>;
  signal: AbortSignal;
  onWait?: (id: string, holder: LeaseHolder) => void;
  onStart?: (id: string) => void;
}

function restore(project: Project, record: NodeRecord): boolean {
  let restored = false;
  for (const o of Object.values(record.outputs)) {
    const abs = join(project.workspace, o.path);
    if (!project.store.isMaterialized(abs, o)) {
      project.store.materialize(abs, o);
      restored = true;
    }
  }
  return restored;
}

/** A usable record for this key: present, and every object it names still there, unmodified. */
function cachedRecord(project: Project, execKey: string): NodeRecord | undefined {
  const r = project.store.readRecord(execKey);
  if (!r) return undefined;
  if (project.store.recordIsComplete(r)) return r;
  project.store.quarantineModified(r);
  return undefined;
}

/** Cache lookup without side effects beyond restoring outputs; undefined when the node must run. */
export function tryCached(ctx: RunContext, node: NodeDef, upstream: Map<string, UpstreamInfo>): { outcome?: Outcome; keys: NodeKeys } {
  const keys = computeKeys(ctx.project, node, upstream, ctx.runtime);
  if (!ctx.force.has(node.id)) {
    const record = cachedRecord(ctx.project, keys.execKey!);
    if (record) return { outcome: { status: 'cached', record, restored: restore(ctx.project, record) }, keys };
  }
  return { keys };
}

/** Run a node that missed the cache (keys from tryCached). */
export async function runNode(ctx: RunContext, node: NodeDef, keys: NodeKeys): Promise<Outcome> {
  const { project } = ctx;
  const { planKey, execFingerprint } = keys;
  const execKey = keys.execKey!;

  // One lease for the key (no two runs execute it twice) and one per workspace output path (no
  // two versions of a node write the same file at once). Sorted, so runs never deadlock.
  const names = [`key-${execKey}`, ...Object.values(node.outs).map((p) => `out-${keyOf([project.workspace, p])}`)].sort();
  const held: Lease[] = [];
  try {
    for (const n of names) held.push(await ctx.leases.acquire(n, node.id, (h) => ctx.onWait?.(node.id, h), ctx.signal));
    if (!ctx.force.has(node.id)) {
      const record = cachedRecord(project, execKey); // another run may have finished it while we waited
      if (record) return { status: 'cached', record, restored: restore(project, record) };
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
  const staging = join(store.tmpDir, `${node.id.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 60)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging, { recursive: true });
  const logPath = join(staging, 'log');
  const startedAt = new Date();
  const t0 = performance.now();
  const fail = (error: string, exitCode?: number | null): Outcome => {
    let log: string | undefined;
    let logTail = '';
    if (existsSync(logPath)) {
      logTail = tail(readFileSync(logPath, 'utf8'), 20);
      log = store.putBlob(logPath);
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
      if (node.type === 'cmd') {
        child = execa(node.command!, { ...common, shell: '/bin/sh', env });
      } else {
        const spec: NodeSpec = {
          format: 1, nodeId: node.id, type: node.type, version: node.version, params: node.params, workspace,
          outs: Object.fromEntries(Object.entries(node.outs).map(([k, p]) => [k, join(workspace, p)])),
          outKinds: node.outKinds, metricsPath: join(staging, 'metrics.json'), runtime: ctx.runtime,
        };
        const specPath = join(staging, 'spec.json');
        writeFileSync(specPath, JSON.stringify(spec));
        child = execa(process.execPath, [CLI, 'exec', specPath], { ...common, env });
      }
    }
    const pgid = child.pid;
    if (pgid !== undefined) onSpawn(pgid);
    const stop = (): void => killGroup(pgid, 'SIGTERM');
    ctx.signal.addEventListener('abort', stop, { once: true });
    let result;
    try {
      result = await child;
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
    const metricsPath = join(staging, 'metrics.json');
    const metrics = existsSync(metricsPath) ? (JSON.parse(readFileSync(metricsPath, 'utf8')) as Record<string, number>) : undefined;
    const log = store.putBlob(logPath);
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
    rmSync(staging, { recursive: true, force: true });
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

