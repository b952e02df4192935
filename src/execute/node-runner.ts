import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { outputLeaseName, type Lease, type LeaseHolder, type LeaseManager } from '../cache/lease.js';
import { localHost, type NodeRecord, type OutputEntry } from '../cache/store.js';
import type { NodeDef } from '../pipeline/expand.js';
import type { Fingerprint } from '../keys/fingerprint.js';
import { computeKeys, type NodeKeys, type UpstreamInfo } from '../plan.js';
import type { Project } from '../project.js';
import type { NodeSpec } from './node-spec.js';
import type { Executor, Launch } from './executor.js';

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
  executor: Executor;
  force: ReadonlySet<string>;
  runtime?: Record<string, string>;
  signal: AbortSignal;
  onWait?: (id: string, holder: LeaseHolder) => void;
  onStart?: (id: string) => void;
  /** A line a built-in stage printed (epoch, loss), for the progress display. */
  onProgress?: (id: string, line: string) => void;
}

/** Objects up to this size are re-hashed before they are restored into the workspace. */
const VERIFY_ON_RESTORE_BYTES = 1 << 30;

/** Serve a cached result: the record, with its outputs restored into the workspace if needed. */
function serveCached(project: Project, execKey: string): Outcome | undefined {
  const record = project.store.readRecord(execKey);
  if (!record) return undefined;
  const check = project.store.checkRecord(record, project.workspace);
  if (!check.usable) {
    project.store.quarantineModified(record);
    return undefined;
  }
  if (check.restore) {
    if (!project.store.verifyRecord(record, VERIFY_ON_RESTORE_BYTES)) return undefined;
    for (const o of Object.values(record.outputs)) project.store.materialize(join(project.workspace, o.path), o);
  }
  return { status: 'cached', record, restored: check.restore };
}

/** Cache lookup without side effects beyond restoring outputs; undefined when the node must run. */
export function tryCached(ctx: RunContext, node: NodeDef, upstream: Map<string, UpstreamInfo>): { outcome?: Outcome; keys: NodeKeys } {
  const keys = computeKeys(ctx.project, node, upstream, ctx.runtime);
  const outcome = ctx.force.has(node.id) ? undefined : serveCached(ctx.project, keys.execKey!);
  return { outcome, keys };
}

/** Run a node that missed the cache (keys from tryCached). */
export async function runNode(ctx: RunContext, node: NodeDef, keys: NodeKeys, upstream: Map<string, UpstreamInfo>): Promise<Outcome> {
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
    const damaged = damagedInputs(project, node, upstream);
    if (damaged) return damaged;
    ctx.onStart?.(node.id);
    return await execute(ctx, node, planKey, execKey, execFingerprint!, (h) => held.forEach((l) => l.setHandle(h)));
  } finally {
    for (const l of held) l.release();
  }
}

/**
 * The upstream outputs this node reads, re-hashed where it will read them (memoised by inode,
 * size, mtime and ctime, so an unchanged file costs a stat): a byte changed since its producer
 * finished must not flow on. Its damaged cache objects are quarantined, so the next run
 * recomputes the producer.
 */
function damagedInputs(project: Project, node: NodeDef, upstream: Map<string, UpstreamInfo>): Outcome | undefined {
  const bad: string[] = [];
  for (const [u, names] of project.graph.consumes.get(node.id)!) {
    const info = upstream.get(u);
    const producer = project.graph.byId.get(u)!;
    let damaged = false;
    for (const name of names) {
      const expected = info?.outputs?.[name];
      const rel = producer.outs[name];
      if (expected === undefined || rel === undefined) continue;
      if (project.digests.digest(join(project.workspace, rel)) !== expected) {
        bad.push(`${rel} (output "${name}" of ${u})`);
        damaged = true;
      }
    }
    const record = damaged && info?.execKey ? project.store.readRecord(info.execKey) : undefined;
    if (record) project.store.verifyRecord(record, Infinity);
  }
  if (bad.length === 0) return undefined;
  const error = `input ${bad.join(', ')} changed after it was produced (its content no longer matches the cache record); damaged cache objects were quarantined: run again to recompute`;
  return { status: 'failed', error, logTail: '' };
}

async function execute(ctx: RunContext, node: NodeDef, planKey: string, execKey: string, fp: Fingerprint, onHandle: Launch['onHandle']): Promise<Outcome> {
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
  // Where the node ran: this machine, or the Slurm node that ran its job.
  let host = localHost();
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
      exitCode, error, log, host, fingerprint: fp,
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
    const env = { ...process.env, ...node.env, DFWE_NODE: node.id, DFWE_WORKSPACE: workspace };
    let argv: string[];
    if (node.type === 'cmd') {
      argv = ['/bin/sh', '-c', node.command!];
    } else {
      const spec: NodeSpec = {
        format: 1, nodeId: node.id, type: node.type, version: node.version, params: node.params, workspace,
        outs: Object.fromEntries(Object.entries(node.outs).map(([k, p]) => [k, join(workspace, p)])),
        outKinds: node.outKinds, metricsPath, runtime: ctx.runtime,
      };
      writeFileSync(specPath, JSON.stringify(spec));
      argv = [process.execPath, CLI, 'exec', specPath];
    }
    // Built-in stages print progress (epoch, loss); a shell command's output goes to its log only.
    const onLine = ctx.onProgress && (node.type !== 'cmd' || ctx.executor.name !== 'local') ? (line: string) => ctx.onProgress!(node.id, line) : undefined;
    const result = await ctx.executor.launch({
      nodeId: node.id, argv, cwd: workspace, env, logPath, resources: node.resources, slurm: node.slurm, signal: ctx.signal, onHandle, onLine,
    });
    host = result.host || host;
    if (ctx.signal.aborted) return fail('interrupted', null);
    if (result.exitCode !== 0) {
      const why = result.reason ?? `exit code ${result.exitCode}`;
      return fail(`${node.type === 'cmd' ? 'command' : `stage ${node.type}`} failed (${why})`, result.exitCode);
    }
    const outputs: Record<string, OutputEntry> = {};
    for (const [name, p] of Object.entries(node.outs)) {
      // A job's files written on another host can take a moment to show here (NFS caches attributes).
      const st = await statEventually(join(workspace, p), ctx.executor.name === 'local' ? 0 : REMOTE_VISIBILITY_MS);
      if (!st) return fail(`did not write its declared output "${name}" (${p})`, 0);
      const kind = node.outKinds[name];
      if ((kind === 'file' && !st.isFile()) || (kind === 'dir' && !st.isDirectory())) return fail(`output "${name}" (${p}) should be a ${kind}`, 0);
    }
    let record: NodeRecord;
    try {
      for (const [name, p] of Object.entries(node.outs)) outputs[name] = store.ingestOutput(join(workspace, p), p);
      const metrics = existsSync(metricsPath) ? (JSON.parse(readFileSync(metricsPath, 'utf8')) as Record<string, number>) : undefined;
      const log = storeLog(logPath);
      const durationMs = performance.now() - t0;
      record = {
        format: 1, nodeId: node.id, planKey, execKey, fingerprint: fp, outputs, log, metrics,
        startedAt: startedAt.toISOString(), durationMs, host,
      };
      store.writeRecord(record);
    } catch (err) {
      // Objects appear whole or not at all and the record comes last: nothing half-made is left.
      return fail(commitFailure(err as NodeJS.ErrnoException, store.root));
    }
    store.writeAttempt(workspace, { nodeId: node.id, status: 'succeeded', execKey, planKey, at: record.startedAt, durationMs: record.durationMs, log: record.log, host: record.host, fingerprint: fp });
    return { status: 'ran', record };
  } catch (err) {
    return fail(`dfwe could not run it: ${(err as Error).message}`);
  } finally {
    for (const p of [logPath, specPath, metricsPath]) rmSync(p, { force: true });
  }
}

const REMOTE_VISIBILITY_MS = 10_000;

async function statEventually(path: string, waitMs: number): Promise<Stats | undefined> {
  const until = Date.now() + waitMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    const st = statSync(path, { throwIfNoEntry: false });
    if (st || Date.now() >= until) return st;
    await new Promise((r) => setTimeout(r, delay));
  }
}

function commitFailure(err: NodeJS.ErrnoException, cacheRoot: string): string {
  const full = err.code === 'ENOSPC' || err.code === 'EDQUOT';
  const why = full ? `the disk holding the cache (${cacheRoot}) is full (${err.code})` : err.message;
  return `ran, but its results could not be stored: ${why}; nothing of it was committed${full ? '. Free space or move the cache (--cache, DFWE_CACHE), then run again' : ''}`;
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

