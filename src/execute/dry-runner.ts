import { RECORD_FORMAT, type NodeRecord } from '../cache/records.js';
import type { Fingerprint } from '../keys/fingerprint.js';
import type { NodeKeys } from '../node-keys.js';
import type { NodeDef } from '../pipeline/types.js';
import type { ExecKey } from '../util/key-types.js';
import type { NodeRunner, Outcome, Placement, Planned } from './runner.js';

/*
 * The runner of `dfwe run -n`: the scheduler carries the plan out with nothing run, on a clock of
 * its own. A node the plan will run "runs" for as long as its last attempt took, so the order
 * nodes start in, their job slots and GPUs, and when each would start are the scheduler's own
 * answers for this run's --jobs and resources, not a second model of them (ninja's dry run is a
 * runner of the same kind). Nothing is read or written but what the plan already holds.
 */

/** A node the run would start: when (ms after the run starts, by the last durations known), and where. */
export interface WouldStart {
  id: string;
  atMs: number;
  slot: number;
  gpus?: string[];
  /** How long its last attempt took; unknown for a node that never ran (counted as no time). */
  lastMs?: number;
}

export interface DryRunResult {
  starts: WouldStart[];
  /** When the last node would end, by the durations known. */
  endMs: number;
}

export class DryRunner implements NodeRunner {
  readonly starts: WouldStart[] = [];
  private nowMs = 0;
  private endMs = 0;
  /** Nodes "running", ended in order of their end time (then of their start). */
  private ending: { endMs: number; seq: number; end: () => void }[] = [];
  private seq = 0;
  private ticking = false;

  constructor(
    private readonly plan: ReadonlyMap<string, Planned & { reason: string }>,
    private readonly lastDuration: (id: string) => number | undefined,
  ) {}

  check(node: NodeDef): { outcome?: Outcome; keys: NodeKeys } {
    const d = this.plan.get(node.id)!;
    const keys: NodeKeys = { planKey: d.planKey, execKey: d.execKey, execFingerprint: d.execFingerprint };
    if (d.state === 'cached') {
      return { keys, outcome: { status: 'cached', served: { planKey: d.planKey, execKey: d.execKey!, metrics: d.metrics, outputs: d.outputs }, restored: d.restore ?? false } };
    }
    if (d.state === 'blocked') return { keys, outcome: { status: 'failed', kind: 'environment', error: d.reason, logTail: '' } };
    return { keys };
  }

  restore(): Promise<Outcome | undefined> {
    throw new Error('a dry run restores nothing: a cached node completes at its check');
  }

  run(node: NodeDef, keys: NodeKeys, _upstream: unknown, placement: Placement, processEnded: () => void): Promise<Outcome> {
    const lastMs = this.lastDuration(node.id);
    const start: WouldStart = { id: node.id, atMs: this.nowMs, slot: placement.slot, lastMs };
    if (placement.gpus) start.gpus = placement.gpus;
    this.starts.push(start);
    return new Promise((resolve) => {
      const endMs = this.nowMs + (lastMs ?? 0);
      this.ending.push({ endMs, seq: this.seq++, end: () => {
        processEnded();
        resolve({ status: 'ran', record: wouldBe(node, keys, lastMs ?? 0) });
      } });
      this.tick();
    });
  }

  result(): DryRunResult {
    return { starts: this.starts, endMs: this.endMs };
  }

  /**
   * One node ends per turn of the event loop, the earliest first: the scheduler's reaction to it
   * (promise callbacks, which run before the next turn) starts what it can at that moment.
   */
  private tick(): void {
    if (this.ticking) return;
    this.ticking = true;
    setImmediate(() => {
      this.ticking = false;
      if (this.ending.length === 0) return;
      let first = 0;
      for (let i = 1; i < this.ending.length; i++) {
        const a = this.ending[i]!;
        const b = this.ending[first]!;
        if (a.endMs < b.endMs || (a.endMs === b.endMs && a.seq < b.seq)) first = i;
      }
      const next = this.ending.splice(first, 1)[0]!;
      this.nowMs = next.endMs;
      this.endMs = Math.max(this.endMs, next.endMs);
      next.end();
      if (this.ending.length > 0) this.tick();
    });
  }
}

/**
 * What the scheduler is told a node produced: the plan's keys and no outputs. Never written; a
 * node after it is decided by the plan, which already says it will run.
 */
function wouldBe(node: NodeDef, keys: NodeKeys, durationMs: number): NodeRecord {
  return {
    format: RECORD_FORMAT, nodeId: node.id, planKey: keys.planKey, execKey: keys.execKey ?? ('' as ExecKey), fingerprint: keys.execFingerprint ?? ({} as Fingerprint),
    outputs: {}, startedAt: '', durationMs, host: '',
  };
}
