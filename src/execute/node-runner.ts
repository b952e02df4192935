import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commitOutput, CommitError, putBlob } from '../cache/commit.js';
import { outputLeaseName, READ_SET_MIN, type Lease, type LeaseHolder, type LeaseManager, type LeaseMode } from '../cache/lease.js';
import { materialize, outputStamp, prepareOutputPath, quarantineModified, RestoreError, VERIFY_ON_RESTORE_BYTES } from '../cache/restore.js';
import { clearRunning, localHost, markRunning, RECORD_FORMAT, type NodeRecord, type OutputEntry, readAttempt, readRecord, writeAttempt } from '../cache/records.js';
import { GroupCommit } from '../cache/group-commit.js';
import { LocalCache, type Cache } from '../cache/cache.js';
import type { RemoteSession } from '../cache/remote-session.js';
import type { NodeDef } from '../pipeline/types.js';
import type { Fingerprint } from '../keys/fingerprint.js';
import type { Digest, ExecKey, PlanKey } from '../util/key-types.js';
import { computeKeys, lookupResult, outputDigests, type NodeKeys, type UpstreamInfo } from '../node-keys.js';
import type { Project } from '../project.js';
import { describeFsError, FsShapeError, isEnvironmentError } from '../util/fs-safe.js';
import { removeIfAny } from '../util/fsx.js';
import type { NodeSpec } from './node-spec.js';
import { LAUNCH_TAG, runTagOf, type Executor, type ExecutorKind, type Launch } from '../executor.js';
import { SpareLogs } from './spare-logs.js';
import { MetricsFileError, readMetricsFiles } from './metrics-files.js';
import { processStart } from '../util/process.js';
import { ownNodeEnv } from '../util/handed-env.js';
import { servedBy, type FailureKind, type NodeRunner, type Outcome, type Placement, type Planned, type SchedulerEvents } from './runner.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

let nodeCounter = 0;
/** Every launch of this engine process carries a tag with this prefix (executor.ts). */
const RUN_TAG = runTagOf({ pid: process.pid, start: processStart(process.pid) }) ?? `${process.pid}.-.`;

/** How long a stage runs before `dfwe show` can see it running. */
const RUNNING_MARK_MS = 300;

export interface RunContext {
  project: Project;
  /** This run's staging directory (cache/tmp/run-PID-…). */
  staging: string;
  /** Empty logs of finished nodes, for the next ones (spare-logs.ts). */
  logs: SpareLogs;
  leases: LeaseManager;
  executor: Executor;
  /** What the engine may assume of the executor. */
  executorKind: ExecutorKind;
  /** Where results are kept: what ran is put there, what is restored is got from it, checked. */
  cache: Cache;
  /** The shared cache, when the run has one: looked in where the local store misses, sent what is committed. */
  remote?: RemoteSession;
  /**
   * dfwe's environment, copied once per run: a stage's starts from it (reading process.env whole
   * for each of 20,000 nodes was a tenth of the engine's time in a sweep of trivial stages).
   */
  baseEnv: NodeJS.ProcessEnv;
  force: ReadonlySet<string>;
  /** The plan this run carries out, by node id (engine/plan.ts): its decisions stand unless an upstream turns out otherwise. */
  plan?: ReadonlyMap<string, Planned>;
  runtime?: Record<string, string>;
  signal: AbortSignal;
  onWait?: (id: string, holder: LeaseHolder) => void;
  onStart?: (id: string) => void;
  /** A line a built-in stage printed (epoch, loss), for the progress display. */
  onProgress?: (id: string, line: string) => void;
  /** Command stages' lines go to onProgress too (`dfwe run -v`). */
  streamOutput: boolean;
}


/** A failure of one node, said as what went wrong: never a stack trace. */
function failure(err: unknown): string {
  if (err instanceof CommitError || err instanceof RestoreError || err instanceof FsShapeError) return err.message;
  if (isEnvironmentError(err)) return describeFsError(err);
  return (err as Error).message;
}

/** A node's failure by an error thrown while it was restored or run, outside its stage's process. */
function failedBy(ctx: RunContext, err: unknown): Outcome {
  const kind: FailureKind = ctx.signal.aborted ? 'interrupted' : err instanceof RestoreError ? 'restore' : err instanceof CommitError || err instanceof FsShapeError ? 'output-refused' : 'environment';
  return { status: 'failed', kind, error: failure(err), logTail: '' };
}

/**
 * A node whose upstreams are done, keyed: a cache hit completes it, a restore or a run is what
 * remains. The plan's decision stands when every upstream is served by the result the plan
 * expected of it (no re-keying, no record read for a node the plan found served as the snapshot
 * had it); a node downstream of one that turned out otherwise is keyed again, once, here.
 */
export function checkNode(ctx: RunContext, node: NodeDef, upstream: Map<string, UpstreamInfo>): { outcome?: Outcome; keys: NodeKeys; restore?: NodeRecord } {
  const planned = ctx.plan?.get(node.id);
  const execKey = planned?.execKey;
  if (planned && execKey !== undefined && asPlanned(ctx, node, upstream)) {
    const keys: NodeKeys = { planKey: planned.planKey, execKey, execFingerprint: planned.execFingerprint };
    if (planned.state === 'cached' && !planned.restore) {
      const served = planned.record ? servedBy(planned.record) : { planKey: planned.planKey, execKey, metrics: planned.metrics, outputs: planned.outputs };
      return { keys, outcome: { status: 'cached', served, restored: false } };
    }
    // Restored or run: with the outputs of every upstream it reads.
    fillUpstreamOutputs(ctx.project, node, upstream);
    if (planned.state === 'cached' && planned.record) return { keys, restore: planned.record };
    if (planned.state === 'run' && planned.execFingerprint) return { keys };
  }
  fillUpstreamOutputs(ctx.project, node, upstream);
  return tryCached(ctx, node, upstream);
}

/** Every upstream is served by the result the plan expected of it. */
function asPlanned(ctx: RunContext, node: NodeDef, upstream: Map<string, UpstreamInfo>): boolean {
  for (const u of ctx.project.graph.upstream.get(node.id)!) {
    if (upstream.get(u)!.execKey !== ctx.plan!.get(u)?.execKey) return false;
  }
  return true;
}

/**
 * The output digests of upstream nodes served without reading their records (see checkNode), read
 * now for a node that is keyed, restored or run with them.
 */
function fillUpstreamOutputs(project: Project, node: NodeDef, upstream: Map<string, UpstreamInfo>): void {
  for (const u of project.graph.upstream.get(node.id)!) {
    const info = upstream.get(u)!;
    if (info.outputs || info.execKey === undefined) continue;
    const record = readRecord(project.store, info.execKey);
    if (!record) throw new Error(`the cached result of ${u} (record ${info.execKey}) left the cache during the run; run again`);
    info.outputs = outputDigests(record);
  }
}

/**
 * A cache hit as planning sees it: the record, and whether its outputs must be restored into the
 * workspace first (which happens under the outputs' leases, in restoreNode).
 */
function tryCached(ctx: RunContext, node: NodeDef, upstream: Map<string, UpstreamInfo>): { outcome?: Outcome; keys: NodeKeys; restore?: NodeRecord } {
  const keys = computeKeys(ctx.project, node, upstream, ctx.runtime);
  if (ctx.force.has(node.id)) return { keys };
  const found = lookupResult(ctx.project, node, keys.execKey!);
  if (found.state === 'damaged') quarantineModified(ctx.project.store, found.record);
  if (found.state === 'restore') return { keys, restore: found.record };
  if (found.state === 'hit') return { keys, outcome: { status: 'cached', served: servedBy(found.record), restored: false } };
  return { keys };
}

/**
 * Serve a record, restoring its outputs at the node's own paths. The caller holds the write
 * leases of those paths. Undefined when the record is unusable after all (damage found).
 */
async function serveCached(ctx: RunContext, node: NodeDef, execKey: ExecKey, owned: Owned): Promise<Outcome | undefined> {
  const { project } = ctx;
  const found = lookupResult(project, node, execKey);
  if (found.state === 'miss') return undefined;
  const { record } = found;
  if (found.state === 'damaged') {
    quarantineModified(project.store, record);
    return undefined;
  }
  if (found.state === 'restore') {
    if (!(await ctx.cache.get(record, VERIFY_ON_RESTORE_BYTES))) return undefined;
    for (const [name, rel] of Object.entries(node.outs)) {
      const abs = join(project.workspace, rel);
      prepareOutputPath(project.bounds, abs, () => owned(rel), `output "${name}" (${rel})`);
      materialize(project.store, project.digests, abs, record.outputs[name]!);
    }
    // The record in use is the one `dfwe why` compares with next time.
    writeAttempt(project.store, project.workspace, { nodeId: node.id, status: 'succeeded', execKey, planKey: record.planKey, at: record.startedAt, durationMs: record.durationMs, log: record.log, host: record.host, fingerprint: record.fingerprint, left: stampsOf(project, node) });
  }
  return { status: 'cached', served: servedBy(record), restored: found.state === 'restore' };
}

/** The lease names of a node: write for each output path (or its key), read for each input it reads (`inputs`, when it will run). */
function leasesOf(project: Project, node: NodeDef, execKey: ExecKey, inputs: readonly Input[] = []): [string, LeaseMode][] {
  const names = new Map<string, LeaseMode>();
  const outs = Object.values(node.outs);
  if (outs.length === 0) names.set(`key-${execKey}`, 'write');
  for (const p of outs) names.set(outputLeaseName(project.workspace, p), 'write');
  for (const { rel } of inputs) {
    const n = outputLeaseName(project.workspace, rel);
    if (!names.has(n)) names.set(n, 'read');
  }
  // One global order for every run: no two runs ever wait on each other in a cycle.
  return [...names].sort(([a], [b]) => (a < b ? -1 : 1));
}

/** The leases, taken in order, and the output paths that are dfwe's to replace. */
async function holdAll(ctx: RunContext, node: NodeDef, names: [string, LeaseMode][]): Promise<{ held: Lease[]; owned: Owned }> {
  const held: Lease[] = [];
  const tookOver = new Set<string>();
  const onWait = (h: LeaseHolder): void => ctx.onWait?.(node.id, h);
  try {
    for (let i = 0; i < names.length; ) {
      // A run of reads between two writes, in the global order, is taken as one set.
      let end = i;
      while (end < names.length && names[end]![1] === 'read') end++;
      if (end - i >= READ_SET_MIN) {
        held.push(await ctx.leases.acquireReadSet(names.slice(i, end).map(([n]) => n), onWait, ctx.signal));
        i = end;
        continue;
      }
      const [n, mode] = names[i++]!;
      const lease = await ctx.leases.acquire(n, node.id, mode, onWait, ctx.signal);
      held.push(lease);
      if (lease.tookOver) tookOver.add(n);
    }
  } catch (err) {
    held.forEach((l) => l.release());
    throw err;
  }
  return { held, owned: ownedOutputs(ctx.project, node, tookOver) };
}

/** Whether an output path holds dfwe's own work (asked only of paths that exist and are not sealed). */
interface Owned {
  (rel: string): boolean;
  /** The stamps the node's last attempt left, by output path. */
  left(): Map<string, string>;
}

/**
 * Output paths of a node that hold dfwe's own work though not sealed: what its last attempt in
 * this workspace left there, by inode (a failed run's partial output, a finished output edited in
 * place), and paths whose lease was taken over from a run that died
 * mid-stage. A file put there by anyone else is not dfwe's to delete.
 */
function ownedOutputs(project: Project, node: NodeDef, tookOver: ReadonlySet<string>): Owned {
  let last: Map<string, string> | undefined;
  const left = (): Map<string, string> => (last ??= new Map(readAttempt(project.store, project.workspace, node.id)?.left ?? []));
  const owned = (rel: string): boolean => {
    if (tookOver.has(outputLeaseName(project.workspace, rel))) return true;
    const stamp = left().get(rel);
    return stamp !== undefined && stamp !== 'absent' && stamp === outputStamp(join(project.workspace, rel));
  };
  return Object.assign(owned, { left });
}

/** The stamps of a node's outputs as they are now (see outputStamp); `cleared`: only those paths, the rest as the last attempt left them. */
function stampsOf(project: Project, node: NodeDef, owned?: Owned, cleared?: ReadonlySet<string>): [string, string][] {
  const out: [string, string][] = [];
  for (const rel of Object.values(node.outs)) {
    if (cleared && !cleared.has(rel)) {
      const before = owned?.left().get(rel);
      if (before !== undefined) out.push([rel, before]);
      continue;
    }
    try {
      out.push([rel, outputStamp(join(project.workspace, rel))]);
    } catch {
      // unreadable: not claimed as dfwe's
    }
  }
  return out;
}

/** Restore a cache hit's outputs under their leases; undefined when it turned out unusable (run it). */
export async function restoreNode(ctx: RunContext, node: NodeDef, keys: NodeKeys): Promise<Outcome | undefined> {
  const { held, owned } = await holdAll(ctx, node, leasesOf(ctx.project, node, keys.execKey!));
  try {
    return await serveCached(ctx, node, keys.execKey!, owned);
  } catch (err) {
    return failedBy(ctx, err);
  } finally {
    held.forEach((l) => l.release());
  }
}

/** How many times a node restores inputs that another run replaced before it gives up. */
const INPUT_RESTORES = 3;

/**
 * Run a node that missed the cache (keys from tryCached). `processEnded` is called once the
 * stage's processes are gone and succeeded, before its results are committed: its job slot is
 * free then.
 */
export async function runNode(ctx: RunContext, node: NodeDef, keys: NodeKeys, upstream: Map<string, UpstreamInfo>, placement: Placement, processEnded: () => void = () => {}): Promise<Outcome> {
  const { planKey, execFingerprint } = keys;
  const execKey = keys.execKey!;
  const inputs = inputsOf(ctx.project, node);
  for (let round = 0; ; round++) {
    let replaced: Input[] = [];
    // Write leases on its output paths: no two runs execute this node, or two versions of it, at
    // once. Read leases on the paths it reads: no run replaces an input while this node reads it.
    const { held, owned } = await holdAll(ctx, node, leasesOf(ctx.project, node, execKey, inputs));
    try {
      if (!ctx.force.has(node.id)) {
        const cached = await serveCached(ctx, node, execKey, owned); // another run may have finished it while we waited
        if (cached) return cached;
        // Another machine's result, brought into the local store (checked), then restored from it.
        const shared = ctx.remote && (await ctx.remote.fetch(execKey)) ? await serveCached(ctx, node, execKey, owned) : undefined;
        if (shared) return shared;
      }
      const checked = await checkInputs(ctx, node, upstream, inputs);
      if (checked.damaged) return checked.damaged;
      replaced = checked.replaced;
      if (replaced.length === 0) {
        ctx.onStart?.(node.id);
        return await execute(ctx, node, planKey, execKey, execFingerprint!, owned, readsOf(ctx.project, node, upstream), (h) => held.forEach((l) => l.setHandle(h)), processEnded, placement);
      }
      if (round >= INPUT_RESTORES) {
        const what = replaced.map((r) => `${r.rel} (output "${r.name}" of ${r.producer})`).join(', ');
        return { status: 'failed', kind: 'input-changed', error: `input ${what} kept being replaced by another run (another version of the pipeline in this workspace); run again once it ends`, logTail: '' };
      }
    } catch (err) {
      return failedBy(ctx, err);
    } finally {
      held.forEach((l) => l.release());
    }
    // Another run wrote a different version of an input since it was produced: put ours back
    // from the cache (under that path's write lease), then take the leases again.
    for (const id of new Set(replaced.map((r) => r.producer))) {
      const info = upstream.get(id)!;
      // A producer outside a part of a pipeline is decoded for it.
      const producer = ctx.project.graph.byId.get(id) ?? ctx.project.part?.node(id);
      if (!producer) return { status: 'failed', kind: 'environment', error: `input of ${id} was replaced by another run, and ${id} is not in the pipeline's expansion memo to restore it; run again`, logTail: '' };
      const outcome = await restoreNode(ctx, producer, { planKey: info.planKey, execKey: info.execKey });
      if (outcome?.status === 'failed') return outcome;
    }
  }
}

interface Input {
  rel: string;
  name: string;
  /** The id of the node that produces it. */
  producer: string;
}

/** The upstream output paths a node reads, with their producers. */
function inputsOf(project: Project, node: NodeDef): Input[] {
  const { graph } = project;
  const out: Input[] = [];
  for (const [u, names] of graph.consumes.get(node.id)!) {
    // A producer outside a part of a pipeline: its outputs are the graph's context.
    const outs = graph.byId.get(u)?.outs ?? graph.context!.get(u)!;
    for (const name of names) {
      const rel = outs[name];
      if (rel !== undefined) out.push({ rel, name, producer: u });
    }
  }
  return out;
}

/**
 * The upstream outputs this node reads, re-hashed where it will read them (memoised by inode,
 * size, mtime and ctime, so an unchanged file costs a stat). One that differs from its record:
 * - if the record's objects are intact, another run replaced it (`replaced`: restore it);
 * - if not, the bytes were damaged after they were produced (`damaged`: the node fails, the
 *   damaged objects are quarantined, and the next run recomputes the producer).
 */
async function checkInputs(ctx: RunContext, node: NodeDef, upstream: Map<string, UpstreamInfo>, inputs: readonly Input[]): Promise<{ damaged?: Outcome; replaced: Input[] }> {
  const { project } = ctx;
  const bad: string[] = [];
  const replaced: Input[] = [];
  for (const i of inputs) {
    const info = upstream.get(i.producer);
    const expected = info?.outputs?.[i.name];
    if (expected === undefined) continue;
    let now: string | undefined;
    try {
      now = project.digests.outputDigest(join(project.workspace, i.rel));
    } catch (err) {
      if (!(err instanceof FsShapeError)) throw err;
      now = undefined;
    }
    if (now === expected) continue;
    const record = info?.execKey ? await ctx.cache.lookup(info.execKey) : undefined;
    if (record && (await ctx.cache.get(record, Infinity))) replaced.push(i);
    else bad.push(`${i.rel} (output "${i.name}" of ${i.producer})`);
  }
  if (bad.length === 0) return { replaced };
  const error = `input ${bad.join(', ')} changed after it was produced (its content no longer matches the cache record); damaged cache objects were quarantined: run again to recompute`;
  return { damaged: { status: 'failed', kind: 'input-changed', error, logTail: '' }, replaced };
}

/** The keys of the upstream records whose outputs a node reads (NodeRecord.reads). */
function readsOf(project: Project, node: NodeDef, upstream: Map<string, UpstreamInfo>): ExecKey[] {
  const keys = new Set<ExecKey>();
  for (const u of project.graph.consumes.get(node.id)!.keys()) {
    const k = upstream.get(u)?.execKey;
    if (k) keys.add(k);
  }
  return [...keys].sort();
}

async function execute(ctx: RunContext, node: NodeDef, planKey: PlanKey, execKey: ExecKey, fp: Fingerprint, owned: Owned, reads: ExecKey[], onHandle: Launch['onHandle'], processEnded: () => void, placement: Placement): Promise<Outcome> {
  const { project } = ctx;
  const { gpus } = placement;
  const { store, workspace } = project;
  // Node files live in the run's staging directory, named by a per-run counter: no directory is
  // created or removed per node.
  const n = nodeCounter++;
  const stem = join(ctx.staging, String(n));
  const tag = `${RUN_TAG}${n}`;
  const logPath = `${stem}.log`;
  ctx.logs.take(logPath);
  const specPath = `${stem}.spec.json`;
  const metricsPath = `${stem}.metrics.json`;
  const scratch = `${stem}.scratch`;
  const startedAt = new Date();
  const t0 = performance.now();
  // Where the node ran: this machine, or the Slurm node that ran its job.
  let host = localHost();
  let peakRssBytes: number | undefined;
  // Most trivial stages print nothing: an empty log is not worth an object.
  const storeLog = (path: string): Digest | undefined => (statSync(path, { throwIfNoEntry: false })?.size ? putBlob(store, path) : undefined);
  // Output paths this attempt cleared for its stage: what is there when it fails is its own.
  const cleared = new Set<string>();
  let markTimer: NodeJS.Timeout | undefined;
  let marked = false;
  const fail = (kind: FailureKind, error: string, exitCode?: number | null): Outcome => {
    let log: Digest | undefined;
    let logTail = '';
    try {
      if (existsSync(logPath)) {
        logTail = tail(readFileSync(logPath, 'utf8'), 20);
        log = storeLog(logPath);
      }
      writeAttempt(store, workspace, {
        nodeId: node.id, status: 'failed', execKey, planKey, at: startedAt.toISOString(), durationMs: performance.now() - t0, peakRssBytes,
        kind, exitCode, error, log, host, gpus, fingerprint: fp, left: stampsOf(project, node, owned, cleared),
      });
    } catch {
      // The failure itself is what matters; a log that cannot be kept (a full disk) is not.
    }
    return { status: 'failed', kind, error, logTail, exitCode, peakRssBytes, gpus };
  };
  try {
    // Stale outputs must not pass for fresh ones: remove them before the stage runs, but only
    // where they really are inside the workspace and only what dfwe made.
    for (const [name, p] of Object.entries(node.outs)) {
      const abs = join(workspace, p);
      prepareOutputPath(project.bounds, abs, () => owned(p), `output "${name}" (${p})`);
      cleared.add(p);
      removeIfAny(abs);
      mkdirSync(dirname(abs), { recursive: true });
    }
    // A node holding gpu tokens sees only its own devices, as Slurm's gres and Ray assign them.
    // (A CUDA_VISIBLE_DEVICES the stage's own env sets is the user's choice and wins.)
    let env: NodeJS.ProcessEnv = { ...ctx.baseEnv, ...(gpus ? { CUDA_VISIBLE_DEVICES: gpus.join(',') } : {}), ...node.env, DFWE_NODE: node.id, DFWE_WORKSPACE: workspace, [LAUNCH_TAG]: tag };
    let argv: string[];
    if (node.type === 'cmd') {
      argv = ['/bin/sh', '-c', node.command!];
    } else {
      const spec: NodeSpec = {
        format: 1, nodeId: node.id, type: node.type, version: node.version, params: node.params, workspace,
        outs: Object.fromEntries(Object.entries(node.outs).map(([k, p]) => [k, join(workspace, p)])),
        outKinds: node.outKinds, metricsPath, runtime: ctx.runtime, scratch, resume: store.resumeDir(execKey), cpus: node.resources.cpu,
      };
      mkdirSync(scratch, { recursive: true });
      writeFileSync(specPath, JSON.stringify(spec));
      argv = [process.execPath, CLI, 'exec', specPath];
      env = ownNodeEnv(env);
    }
    // Built-in stages print progress (epoch, loss); a shell command's output goes to its log only.
    const onLine = ctx.onProgress && (node.type !== 'cmd' || ctx.streamOutput || ctx.executorKind.commandOutputIsProgress) ? (line: string) => ctx.onProgress!(node.id, line) : undefined;
    // `dfwe show` and `dfwe logs` find a running node, and its log so far, through a marker,
    // written once the stage has run a moment: the many stages that take milliseconds cost no file.
    markTimer = setTimeout(() => {
      markRunning(store, workspace, { nodeId: node.id, pid: process.pid, start: processStart(process.pid), host, since: startedAt.toISOString(), slot: placement.slot, gpus, log: logPath });
      marked = true;
    }, RUNNING_MARK_MS);
    // The executor returns once every process of the stage is gone: nothing can write an output
    // after it is committed.
    const launched = ctx.executor.launch({
      nodeId: node.id, tag, argv, cwd: workspace, env, logPath, resources: node.resources, options: node.executorOptions[ctx.executorKind.name] ?? {}, signal: ctx.signal, onHandle, onLine, allOutput: ctx.streamOutput,
    });
    ctx.cache.warm?.();
    const result = await launched;
    // A success frees its job slot for the commit; a failure keeps it until the scheduler has
    // seen the failure, so that without --keep-going nothing new starts after it.
    if (result.exitCode === 0 && !ctx.signal.aborted) processEnded();
    host = result.host || host;
    peakRssBytes = result.peakRssBytes;
    if (ctx.signal.aborted) return fail('interrupted', 'interrupted', null);
    if (result.exitCode !== 0) {
      const why = result.reason ?? `exit code ${result.exitCode}`;
      return fail('exit', `${node.type === 'cmd' ? 'command' : `stage ${node.type}`} failed (${why})`, result.exitCode);
    }
    for (const [name, p] of Object.entries(node.outs)) {
      // A job's files written on another host can take a moment to show here (NFS caches attributes).
      const st = await statEventually(join(workspace, p), ctx.executorKind.outputsVisibleWithinMs);
      if (!st) return fail('missing-output', `did not write its declared output "${name}" (${p})`, 0);
    }
    let fileMetrics: Record<string, number> | undefined;
    try {
      fileMetrics = readMetricsFiles(workspace, project.bounds, node);
    } catch (err) {
      if (!(err instanceof MetricsFileError) && !isEnvironmentError(err)) throw err;
      return err instanceof MetricsFileError ? fail('metrics', err.message, 0) : fail('environment', describeFsError(err as NodeJS.ErrnoException), 0);
    }
    let record: NodeRecord;
    try {
      const outputs: Record<string, OutputEntry> = {};
      // A big output can take minutes to commit on this thread: heartbeats go on without it.
      const heavy = <T>(work: () => T): T => ctx.leases.heavy(work);
      for (const [name, p] of Object.entries(node.outs)) outputs[name] = commitOutput(store, project.bounds, join(workspace, p), p, name, node.outKinds[name] ?? 'any', heavy);
      // A built-in stage is told where its metrics go; a command declares its metrics files.
      const metrics = node.type === 'cmd' ? fileMetrics : readMetrics(metricsPath);
      const log = storeLog(logPath);
      const durationMs = performance.now() - t0;
      record = {
        format: RECORD_FORMAT, nodeId: node.id, planKey, execKey, fingerprint: fp, outputs, log, metrics,
        startedAt: startedAt.toISOString(), durationMs, host, peakRssBytes,
      };
      if (gpus) record.gpus = gpus;
      if (reads.length > 0) record.reads = reads;
      await ctx.cache.put(record);
      ctx.remote?.send(record);
      // Committed: what earlier attempts left to resume from is done with.
      if (node.type !== 'cmd') rmSync(store.resumeDir(execKey), { recursive: true, force: true });
    } catch (err) {
      if (err instanceof CommitError) return fail('output-refused', err.message, 0);
      // Objects appear whole or not at all and the record comes last: nothing half-made is left.
      return fail('store', commitFailure(err as NodeJS.ErrnoException, store.root));
    }
    writeAttempt(store, workspace, { nodeId: node.id, status: 'succeeded', execKey, planKey, at: record.startedAt, durationMs: record.durationMs, peakRssBytes, log: record.log, host: record.host, gpus, fingerprint: fp, left: stampsOf(project, node) });
    return { status: 'ran', record };
  } catch (err) {
    if (err instanceof RestoreError) return fail('restore', err.message);
    return fail(ctx.signal.aborted ? 'interrupted' : 'environment', `dfwe could not run it: ${failure(err)}`);
  } finally {
    clearTimeout(markTimer);
    if (marked) clearRunning(store, workspace, node.id);
    // A shell command has a log only; a built-in stage also its spec, metrics and scratch.
    ctx.logs.give(logPath);
    if (node.type !== 'cmd') for (const p of [specPath, metricsPath, scratch]) rmSync(p, { recursive: true, force: true });
  }
}

/** A built-in stage's metrics: numbers by name, or none. */
function readMetrics(path: string): Record<string, number> | undefined {
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (!m || typeof m !== 'object' || Array.isArray(m)) return undefined;
  const entries = Object.entries(m).filter(([, v]) => typeof v === 'number' && Number.isFinite(v));
  return entries.length ? (Object.fromEntries(entries) as Record<string, number>) : undefined;
}

async function statEventually(path: string, waitMs: number): Promise<Stats | undefined> {
  const until = Date.now() + waitMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st || Date.now() >= until) return st;
    await new Promise((r) => setTimeout(r, delay));
  }
}

function commitFailure(err: NodeJS.ErrnoException, cacheRoot: string): string {
  const full = err.code === 'ENOSPC' || err.code === 'EDQUOT';
  const why = full ? `the disk holding the cache (${cacheRoot}) is full (${err.code})` : isEnvironmentError(err) ? describeFsError(err) : String((err as Error).message);
  return `ran, but its results could not be stored: ${why}; nothing of it was committed${full ? '. Free space or move the cache (--cache, DFWE_CACHE), then run again' : ''}`;
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

/** What a real run gives its runner: the run context, less what the runner makes itself. */
export type LocalRunnerOptions = Omit<RunContext, 'project' | 'staging' | 'logs' | 'cache' | 'baseEnv' | 'onWait' | 'onStart' | 'onProgress'> & {
  events: SchedulerEvents;
  /** Where results are put and got; the project's local store unless given. */
  cache?: Cache;
};

/**
 * The runner of a real run: nodes keyed against the cache, run by the executor under their
 * leases, their outputs committed. `close()` when the graph is done removes the run's staging.
 */
export function localRunner(project: Project, o: LocalRunnerOptions): NodeRunner & { close(): void } {
  project.store.cleanDeadStaging();
  const staging = project.store.runStaging();
  const { events, cache, ...given } = o;
  const ctx: RunContext = {
    ...given, project, staging, logs: new SpareLogs(staging), cache: cache ?? new LocalCache(project.store, new GroupCommit()), baseEnv: { ...process.env },
    onWait: (id, h) => events.waiting(id, h),
    onStart: (id) => events.started(id),
    onProgress: (id, line) => events.progress(id, line),
  };
  return {
    check: (node, upstream) => checkNode(ctx, node, upstream),
    restore: (node, keys) => restoreNode(ctx, node, keys),
    run: (node, keys, upstream, placement, processEnded) => runNode(ctx, node, keys, upstream, placement, processEnded),
    close: () => rmSync(staging, { recursive: true, force: true }),
  };
}
