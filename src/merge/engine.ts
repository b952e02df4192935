import { basename } from 'node:path';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { layOutCheckpoint, openCheckpoint, type Checkpoint } from '../checkpoint/checkpoint.js';
import { DTYPE_BYTES, isFloatDtype } from '../checkpoint/dtype.js';
import { kernelModule } from './kernels.js';
import { MergeThread, type MergeItem, type MergeJob } from './merge-thread.js';
import { stepOf, type MergePlan, type MergeSetup } from './merge-plan.js';
import { StageInputError } from '../stage-type.js';
import { modelCountProblem } from './method.js';
import { globMatcher } from './patterns.js';

/*
 * Merging checkpoints tensor by tensor, chunk by chunk: memory stays at a few chunks per input
 * (plus one tensor's worth of scratch for methods that look at a whole tensor first, as TIES
 * does), whatever the size of the models. Floating tensors chosen by include/exclude are
 * merged, accumulating in float64, and written back in the first model's dtype; the others are
 * copied from the first model. The result has the first model's layout.
 */




export function planMerge(setup: MergeSetup): MergePlan {
  const { method } = setup;
  const k = setup.models.length;
  const count = modelCountProblem(method, k);
  if (count) throw new StageInputError(count);
  if (method.needsBase && !setup.base) throw new StageInputError(`method ${method.name} needs a base model ("base"): it merges task vectors θᵢ − θ_base`);
  const labels = setup.labels ?? setup.models;
  const models = setup.models.map(openCheckpoint);
  const base = setup.base ? openCheckpoint(setup.base) : undefined;
  const first = models[0]!;
  const include = setup.include?.length ? globMatcher(setup.include) : () => true;
  const exclude = setup.exclude?.length ? globMatcher(setup.exclude) : () => false;
  const groupPatterns = (setup.groups ?? []).map((p) => globMatcher([p]));
  const groupOf = new Map<string, number>();
  let other = false;
  let largest = 0;
  for (const [name, t] of first.tensors) {
    if (!isFloatDtype(t.dtype) || !include(name) || exclude(name)) continue;
    models.forEach((m, i) => check(name, t, m, labels[i]!, labels[0]!));
    if (base) check(name, t, base, `the base (${setup.base})`, labels[0]!);
    let g = groupPatterns.findIndex((match) => match(name));
    if (g < 0) {
      g = groupPatterns.length;
      other = true;
    }
    groupOf.set(name, g);
    largest = Math.max(largest, t.bytes / DTYPE_BYTES[t.dtype]!);
  }
  // Another model's tensors that the first lacks matter only if they would be merged: a task head
  // left out by include or exclude (each expert's own) is no mismatch.
  models.forEach((m, i) => {
    const extra = [...m.tensors.keys()].filter((n) => !first.tensors.has(n) && include(n) && !exclude(n));
    if (extra.length) throw new StageInputError(`${labels[i]} has tensor${extra.length === 1 ? '' : 's'} ${extra.slice(0, 3).map((n) => `"${n}"`).join(', ')} that ${labels[0]} lacks: merged models must share one architecture`);
  });
  if (groupOf.size === 0) throw new StageInputError(`no floating-point tensor of ${labels[0]} is chosen for merging${setup.include?.length ? ` (include: ${setup.include.join(', ')})` : ''}`);
  // A group that holds no tensor (a typo, or one an earlier group took) is a mistake, as an include matching nothing is.
  const used = new Set(groupOf.values());
  const empty = (setup.groups ?? []).filter((_, g) => !used.has(g));
  if (empty.length) throw new StageInputError(`group${empty.length === 1 ? '' : 's'} ${empty.map((p) => `"${p}"`).join(', ')} match${empty.length === 1 ? 'es' : ''} no merged tensor of ${labels[0]} (a tensor goes to the first group it matches); each group gets weights of its own, so one that holds none is a mistake`);
  const groupNames = [...(setup.groups ?? [])];
  if (other) groupNames.push('(other tensors)');
  const plan = { setup, models, base, groupOf, groupNames, largest, largestStep: 0 };
  for (const name of groupOf.keys()) plan.largestStep = Math.max(plan.largestStep, stepOf(plan, first.tensors.get(name)!.shape));
  return plan;
}

function check(name: string, ref: { dtype: string; shape: number[] }, m: Checkpoint, label: string, refLabel: string): void {
  const t = m.tensors.get(name);
  // The file only when it says more than the label (a shard of a model directory), never the same path twice.
  const where = (c: Checkpoint, l: string): string => (basename(c.path) === l || c.path === l || c.path.endsWith(`/${l.replace(/^\.\//, '')}`) ? l : `${l} (${c.path})`);
  if (!t) throw new StageInputError(`tensor "${name}" is in ${refLabel} but not in ${where(m, label)}: merged models must share one architecture`);
  if (t.shape.join('x') !== ref.shape.join('x')) throw new StageInputError(`tensor "${name}" has shape [${t.shape}] in ${where(m, label)} and [${ref.shape}] in ${refLabel}`);
  if (t.dtype !== ref.dtype) throw new StageInputError(`tensor "${name}" is ${t.dtype} in ${where(m, label)} and ${ref.dtype} in ${refLabel}`);
}

export interface MergeOptions {
  /** The most threads to merge with (default: the machine's cores); a small merge uses fewer. The bytes are the same for any number. */
  threads?: number;
}

/** Elements per merge item claimed by a thread: large enough that claiming costs nothing, small enough to balance. */
const ITEM = 1 << 20;
/** Elements per thread below which another thread is not worth its start (about 40 ms). */
const PER_THREAD = 1 << 22;

/**
 * Write the merge with `weights[g]` (one weight per model) for group g into directory `out`, in
 * the first model's layout with its other files: every file is laid out first, then this thread
 * and the plan's workers claim ranges of tensors in turn and write each at its place. Workers
 * stay with the plan for its next merge (a search merges many times); closeMerge ends them.
 */
export async function writeMerge(plan: MergePlan, weights: number[][], out: string, options: MergeOptions = {}): Promise<{ threads: number }> {
  const k = plan.models.length;
  if (weights.length !== plan.groupNames.length || weights.some((w) => w.length !== k)) {
    throw new Error(`internal: ${weights.length}×${weights[0]?.length} weights for ${plan.groupNames.length} groups of ${k} models`);
  }
  const { method } = plan.setup;
  const first = plan.models[0]!;
  const output = layOutCheckpoint(first, out);
  const prepares: MergeItem[] = [];
  const ranges: ((states: Map<string, unknown>) => MergeItem)[] = [];
  let elements = 0;
  for (const [name, info] of first.tensors) {
    if (!plan.groupOf.has(name)) {
      for (let from = 0; from < info.bytes; from += ITEM * 4) ranges.push(() => ({ kind: 'copy', tensor: name, from, bytes: Math.min(ITEM * 4, info.bytes - from) }));
      continue;
    }
    const size = info.bytes / DTYPE_BYTES[info.dtype]!;
    elements += size;
    if (method.prepare) prepares.push({ kind: 'prepare', tensor: name });
    const step = stepOf(plan, info.shape);
    const span = Math.max(step, Math.floor(ITEM / step) * step);
    for (let start = 0; start < size; start += span) ranges.push((states) => ({ kind: 'merge', tensor: name, start, n: Math.min(span, size - start), state: states.get(name) }));
  }
  const threads = Math.max(1, Math.min(options.threads ?? availableParallelism(), Math.ceil(elements / PER_THREAD)));
  const team = teamOf(plan, threads);
  const job = { weights, positions: output.positions };
  const states = new Map<string, unknown>();
  const prepared = await team.runAll(job, prepares);
  prepares.forEach((p, i) => states.set(p.tensor, prepared[i]));
  await team.runAll(job, ranges.map((r) => r(states)));
  output.finish();
  return { threads: team.threads };
}

/** Ends the plan's worker threads (a plan merged again starts new ones). */
export async function closeMerge(plan: MergePlan): Promise<void> {
  const team = teams.get(plan);
  teams.delete(plan);
  await team?.close();
}


/** What a worker needs to plan the same merge (the setup with its method by name), and the counters it claims items with. */
export interface WorkerSetup {
  setup: Omit<MergeSetup, 'method'> & { method: string };
  module: WebAssembly.Module;
  /** [next item, stop]: shared by every thread of the team. */
  counters: SharedArrayBuffer;
}

export type WorkerReply = { results: [number, unknown][] } | { error: string; input: boolean };

/** Claims items until none is left or a thread failed; returns what it ran. */
export function claimItems(counters: Int32Array, items: MergeItem[], run: (item: MergeItem) => unknown): [number, unknown][] {
  const results: [number, unknown][] = [];
  try {
    for (let i = Atomics.add(counters, 0, 1); i < items.length && Atomics.load(counters, 1) === 0; i = Atomics.add(counters, 0, 1)) results.push([i, run(items[i]!)]);
  } catch (err) {
    Atomics.store(counters, 1, 1);
    throw err;
  }
  return results;
}

/**
 * This thread and up to threads − 1 workers, claiming a phase's items from one shared counter:
 * this thread starts at once, and workers join as they come up, so a short merge does not wait
 * for them.
 */
class Team {
  private readonly counters = new Int32Array(new SharedArrayBuffer(8));
  private readonly workers: Worker[] = [];
  private readonly here: MergeThread;
  private dead?: Error;

  constructor(
    private readonly plan: MergePlan,
    readonly threads: number,
  ) {
    this.here = new MergeThread(plan);
    const data: WorkerSetup = { setup: { ...plan.setup, method: plan.setup.method.name }, module: kernelModule(), counters: this.counters.buffer as SharedArrayBuffer };
    for (let i = 1; i < threads; i++) {
      const w = new Worker(new URL('./merge-worker.js', import.meta.url), { workerData: data });
      // A worker that dies (out of memory) fails the merge instead of leaving it waiting.
      w.on('error', (err) => {
        this.dead ??= err;
        Atomics.store(this.counters, 1, 1);
      });
      w.unref();
      this.workers.push(w);
    }
  }

  async runAll(job: MergeJob, items: MergeItem[]): Promise<unknown[]> {
    if (items.length === 0) return [];
    Atomics.store(this.counters, 0, 0);
    Atomics.store(this.counters, 1, 0);
    const replies = this.workers.map(
      (w) =>
        new Promise<WorkerReply>((resolve) => {
          const onExit = (): void => resolve({ error: this.dead?.message ?? 'a merge thread stopped', input: false });
          w.once('exit', onExit);
          w.once('message', (reply: WorkerReply) => {
            w.off('exit', onExit);
            resolve(reply);
          });
          w.postMessage({ job, items });
        }),
    );
    const results: unknown[] = new Array(items.length);
    let failure: Error | undefined;
    this.here.begin(job);
    try {
      for (const [i, r] of claimItems(this.counters, items, (item) => this.here.run(item))) results[i] = r;
    } catch (err) {
      failure = err as Error;
    } finally {
      this.here.end();
    }
    for (const reply of await Promise.all(replies)) {
      if ('error' in reply) failure ??= reply.input ? new StageInputError(reply.error) : new Error(reply.error);
      else for (const [i, r] of reply.results) results[i] = r;
    }
    if (failure) {
      await closeMerge(this.plan);
      throw failure;
    }
    return results;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

const teams = new WeakMap<MergePlan, Team>();

function teamOf(plan: MergePlan, threads: number): Team {
  let team = teams.get(plan);
  if (team && team.threads < threads) {
    void team.close();
    team = undefined;
  }
  if (!team) {
    team = new Team(plan, threads);
    teams.set(plan, team);
  }
  return team;
}
