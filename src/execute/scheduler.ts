import type { Graph } from '../graph.js';
import type { NodeDef } from '../pipeline/types.js';
import type { NodeKeys, UpstreamInfo } from '../node-keys.js';
import { servedBy, type Finished, type NodeRunner, type Outcome, type SchedulerEvents, type Served } from './runner.js';
import { capacityFor } from '../executor.js';
import { pushAll } from '../util/arrays.js';

export interface SchedulerOptions {
  jobs: number;
  /** After a failure, keep starting nodes that do not depend on it. Default: stop starting new ones. */
  keepGoing: boolean;
  /**
   * Capacity of each resource token (cpu defaults to jobs; gpu to the GPUs found; others 0).
   * Undefined: resources are not limited here (a Slurm cluster allocates them).
   */
  capacity?: Record<string, number>;
  /** The device of each gpu token: a node holding tokens sees their devices (CUDA_VISIBLE_DEVICES). */
  gpus?: readonly string[];
  signal: AbortSignal;
  events: SchedulerEvents;
  /**
   * Nodes served before the run starts, as its plan had them (a run told from the snapshot, which
   * schedules only what it may execute: engine/part-run.ts): complete from the start, counted as
   * cached and not reported one by one. A node of the graph among them is not run.
   */
  served?: ReadonlyMap<string, Served>;
}

/** What a run tells: the scheduler's events, and the run's start and end. */
export interface Reporter extends SchedulerEvents {
  /** Ids the plan expects to run, before the run starts (a terminal display lists them). */
  begin(expectedToRun: string[]): Promise<void> | void;
  end(summary: RunSummary, seconds: number): Promise<void> | void;
}

export interface RunSummary {
  /** What serves each node that ran or was cached. */
  served: Map<string, Served>;
  ran: number;
  cached: number;
  restored: number;
  failed: string[];
  skipped: number;
  interrupted: boolean;
}

/** Nodes per job slot that may wait for their group commit at once. */
const COMMITTING_PER_JOB = 8;

/**
 * Runs the graph: a node starts when all its upstreams succeeded and a job slot and its resource
 * tokens are free. Cache hits complete inline (no process, no await), so a no-op run of 10,000
 * nodes costs key computation and record reads only.
 */
export async function runGraph(graph: Graph, runner: NodeRunner, opts: SchedulerOptions): Promise<RunSummary> {
  const { capacity } = opts;
  const capacityOf = (r: string): number => (capacity ? capacityFor(capacity, opts.jobs, r) : Infinity);
  const before = opts.served;
  const summary: RunSummary = { served: new Map(before ?? []), ran: 0, cached: before?.size ?? 0, restored: 0, failed: [], skipped: 0, interrupted: false };
  const infos = new Map<string, UpstreamInfo>();
  const done = new Set<string>();
  const servedBefore = (id: string): void => {
    const s = before?.get(id);
    if (!s) throw new Error(`${id} is read by the graph but neither in it nor served before it runs`);
    infos.set(id, { planKey: s.planKey, outputs: s.outputs, execKey: s.execKey });
  };
  for (const n of before ? graph.order : []) {
    if (!before!.has(n.id)) continue;
    done.add(n.id);
    servedBefore(n.id);
  }
  // The upstream nodes each node still waits for: those of the graph not served before it runs
  // (one outside the graph, part of a pipeline's context, was).
  const upstreamLeft = (id: string): number => {
    const ups = graph.upstream.get(id)!;
    if (!before) return ups.length;
    let left = 0;
    for (const u of ups) {
      if (!graph.byId.has(u)) {
        if (!infos.has(u)) servedBefore(u);
      } else if (!done.has(u)) left++;
    }
    return left;
  };
  const remaining = new Map(graph.order.map((n) => [n.id, upstreamLeft(n.id)]));
  const position = new Map(graph.order.map((n, i) => [n.id, i]));
  // Nodes whose upstreams are done wait in `toCheck` until keyed once; cache misses move to
  // `toRun` (pipeline order) with their keys, so no node is keyed twice by the scheduler.
  const toCheck: NodeDef[] = graph.order.filter((n) => remaining.get(n.id) === 0 && !done.has(n.id));
  let checkHead = 0;
  const toRun: { node: NodeDef; keys: NodeKeys }[] = [];
  const inUse: Record<string, number> = {};
  /** Job slots in use: a stage process runs. */
  let running = 0;
  /** Nodes started and not complete: running, or committing after their process ended. */
  let inFlight = 0;
  const maxCommitting = Math.max(COMMITTING_PER_JOB * opts.jobs, 16);
  /** Cache hits whose outputs are being restored (under their leases; no job slot). */
  let restoring = 0;
  let halted = false;


  const skip = (id: string, reason: string): void => {
    const stack = [id];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (done.has(d)) continue;
      done.add(d);
      summary.skipped++;
      opts.events.finished(d, { status: 'skipped', reason });
      pushAll(stack, graph.downstream.get(d)!);
    }
  };

  const complete = (node: NodeDef, outcome: Outcome): void => {
    done.add(node.id);
    opts.events.finished(node.id, outcome);
    if (outcome.status === 'failed') {
      summary.failed.push(node.id);
      if (!opts.keepGoing) halted = true;
      for (const d of graph.downstream.get(node.id)!) skip(d, `upstream ${node.id} failed`);
      return;
    }
    if (outcome.status === 'cached') {
      summary.cached++;
      if (outcome.restored) summary.restored++;
    } else summary.ran++;
    const served = outcome.status === 'ran' ? servedBy(outcome.record) : outcome.served;
    summary.served.set(node.id, served);
    infos.set(node.id, { planKey: served.planKey, outputs: served.outputs, execKey: served.execKey });
    for (const d of graph.downstream.get(node.id)!) {
      const left = remaining.get(d)! - 1;
      remaining.set(d, left);
      if (left > 0 && pendingCommits.get(d) === left) imminent.add(d);
      if (left === 0 && !done.has(d)) toCheck.push(graph.byId.get(d)!);
    }
  };

  const enqueueRun = (node: NodeDef, keys: NodeKeys): void => {
    const p = position.get(node.id)!;
    let i = toRun.length;
    while (i > 0 && position.get(toRun[i - 1]!.node.id)! > p) i--;
    toRun.splice(i, 0, { node, keys });
  };

  // Nodes whose every remaining upstream is committing (its process done): ready soon.
  const pendingCommits = new Map<string, number>();
  const imminent = new Set<string>();
  const committing = (node: NodeDef, delta: 1 | -1): void => {
    for (const d of graph.downstream.get(node.id)!) {
      const n = (pendingCommits.get(d) ?? 0) + delta;
      pendingCommits.set(d, n);
      if (n > 0 && n === remaining.get(d)) imminent.add(d);
      else imminent.delete(d);
    }
  };
  const imminentBefore = (p: number): boolean => {
    for (const d of imminent) if (position.get(d)! < p) return true;
    return false;
  };

  // Which gpu tokens are free, lowest first: a node is given the devices of the tokens it holds.
  const freeGpuTokens = Array.from({ length: opts.gpus?.length ?? 0 }, (_, i) => i);
  // Job slots by number, lowest free first, as `dfwe show` and the timeline name them.
  const freeSlots: number[] = [];
  let slotsMade = 0;
  const takeSlot = (): number => (freeSlots.length ? freeSlots.shift()! : slotsMade++);
  const takeGpuTokens = (n: number): number[] => (opts.gpus ? freeGpuTokens.splice(0, n) : []);
  const fits = (n: NodeDef): boolean => Object.entries(n.resources).every(([r, amount]) => (inUse[r] ?? 0) + amount <= capacityOf(r));
  const stopped = (): boolean => halted || opts.signal.aborted;
  // A runner that throws rather than report a failure: the run was stopped, or the machine refused it.
  const thrown = (err: unknown): Outcome => ({ status: 'failed', kind: opts.signal.aborted ? 'interrupted' : 'environment', error: (err as Error).message, logTail: '' });

  await new Promise<void>((resolveAll) => {
    const pump = (): void => {
      // Cache hits finish inline and may make more nodes ready: a loop, not recursion, so a
      // 10,000-node chain of hits never deepens the stack.
      while (!stopped() && checkHead < toCheck.length) {
        const n = toCheck[checkHead++]!;
        if (done.has(n.id)) continue;
        let r;
        try {
          r = runner.check(n, infos);
        } catch (err) {
          complete(n, thrown(err));
          continue;
        }
        if (r.outcome) complete(n, r.outcome);
        else if (r.restore) {
          restoring++;
          const keys = r.keys;
          runner.restore(n, keys)
            .catch(thrown)
            .then((outcome) => {
              restoring--;
              if (outcome) complete(n, outcome);
              else enqueueRun(n, keys); // damaged after all: compute it
              pump();
            });
        } else enqueueRun(n, r.keys);
      }
      // Committing nodes hold their leases until their group commit is done: bounded, so that
      // a slow disk makes stages wait rather than piling up leases and memory.
      while (!stopped() && running < opts.jobs && inFlight - running < maxCommitting) {
        const idx = toRun.findIndex((t) => fits(t.node));
        if (idx < 0) break;
        // A node that comes earlier in the pipeline is about to be ready (only commits are left
        // before it): it gets the slot, so the order nodes start in is the pipeline's, as if no
        // slot had been freed early.
        if (imminentBefore(position.get(toRun[idx]!.node.id)!)) break;
        const { node, keys } = toRun.splice(idx, 1)[0]!;
        running++;
        inFlight++;
        for (const [r, a] of Object.entries(node.resources)) inUse[r] = (inUse[r] ?? 0) + a;
        const tokens = takeGpuTokens(node.resources.gpu ?? 0);
        const slot = takeSlot();
        // The slot and resources are free once the stage's processes are gone: the next stage
        // starts while this one's results are committed.
        let freed = false;
        const free = (): void => {
          if (freed) return;
          freed = true;
          running--;
          for (const [r, a] of Object.entries(node.resources)) inUse[r]! -= a;
          pushAll(freeGpuTokens, tokens);
          freeGpuTokens.sort((a, b) => a - b);
          freeSlots.push(slot);
          freeSlots.sort((a, b) => a - b);
        };
        const gpus = opts.gpus && tokens.length ? [...new Set(tokens.map((t) => opts.gpus![t]!))] : undefined;
        runner.run(node, keys, infos, { slot, gpus }, () => {
          free();
          opts.events.processEnded?.(node.id);
          committing(node, +1);
          pump();
        })
          .catch(thrown)
          .then((outcome) => {
            if (freed) committing(node, -1);
            free();
            inFlight--;
            complete(node, outcome);
            pump();
          });
      }
      if (inFlight === 0 && restoring === 0 && (stopped() || (toRun.length === 0 && checkHead >= toCheck.length))) {
        if (opts.signal.aborted) summary.interrupted = true;
        const reason = opts.signal.aborted ? 'interrupted' : 'not started: stopped after a failure (use --keep-going)';
        for (const n of [...toCheck.slice(checkHead), ...toRun.map((t) => t.node)]) skip(n.id, reason);
        for (const n of graph.order) if (!done.has(n.id)) skip(n.id, reason);
        resolveAll();
      }
    };
    pump();
  });
  return summary;
}
