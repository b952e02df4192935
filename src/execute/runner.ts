import type { LeaseHolder } from '../cache/lease.js';
import type { NodeRecord } from '../cache/records.js';
import { outputDigests, type NodeKeys, type UpstreamInfo } from '../node-keys.js';
import type { Fingerprint } from '../keys/fingerprint.js';
import type { ExecKey, PlanKey } from '../util/key-types.js';
import type { NodeDef } from '../pipeline/types.js';

/* The seam between the scheduler, which decides when each node runs, and whatever runs it. */

/**
 * The result that serves a node: its keys and metrics, and its record where it was read. A node the
 * plan found served as the snapshot had it is served without reading its record.
 */
export interface Served {
  planKey: PlanKey;
  execKey: ExecKey;
  metrics?: Record<string, number>;
  /** Its outputs' digests by name: the record's, or the served set's for a node the plan found cached without it. */
  outputs?: Record<string, string>;
  record?: NodeRecord;
}

export function servedBy(record: NodeRecord): Served {
  return { planKey: record.planKey, execKey: record.execKey, metrics: record.metrics, outputs: outputDigests(record), record };
}

/** What the plan decided for a node, as a runner carries it out (engine/plan.ts's Decision is one). */
export interface Planned {
  state: 'cached' | 'run' | 'blocked';
  planKey: PlanKey;
  /** Known when every upstream's result was known to the plan. */
  execKey?: ExecKey;
  execFingerprint?: Fingerprint;
  /** A cached node whose outputs must be put back in the workspace. */
  restore?: boolean;
  /** Read by the plan; absent for a node it found served as the snapshot had it. */
  record?: NodeRecord;
  /** The node's metrics, where its record was not read (from the snapshot's served set). */
  metrics?: Record<string, number>;
  /** Its outputs' digests, where its record was not read (from the snapshot's served set, when it has them). */
  outputs?: Record<string, string>;
}

/**
 * Why a node failed, as data: the stage's own failure, dfwe refusing what it wrote, or the
 * machine refusing dfwe, which a reporter, the history and `dfwe show` tell apart (the message
 * says the particulars).
 */
export const FAILURE_KINDS = {
  exit: 'the stage failed: a non-zero exit, a signal, or it could not start',
  interrupted: 'the run was stopped while it ran',
  'missing-output': 'it ended well without writing a declared output',
  metrics: 'a declared metrics file is missing or not what dfwe reads',
  'output-refused': 'dfwe cannot store an output as it is (a symlink, a path leading out of the workspace, the wrong kind of file)',
  store: 'its results could not be stored (a full disk, a cache dfwe cannot write)',
  'input-changed': 'an input changed after it was produced, or another run kept replacing it',
  restore: 'a cached result could not be put in place',
  environment: 'dfwe could not run it: the workspace or cache refused a file operation, or a result left the cache during the run',
} as const;

export type FailureKind = keyof typeof FAILURE_KINDS;

export const isFailureKind = (v: unknown): v is FailureKind => typeof v === 'string' && Object.hasOwn(FAILURE_KINDS, v);

/** How a node's check, restore or run ended. */
export type Outcome =
  | { status: 'cached'; served: Served; restored: boolean }
  | { status: 'ran'; record: NodeRecord }
  | { status: 'failed'; kind: FailureKind; error: string; logTail: string; exitCode?: number | null; peakRssBytes?: number; gpus?: string[] };

/** Where a node runs in this run: its job slot (0 = the first) and the GPUs it was given. */
export interface Placement {
  slot: number;
  gpus?: string[];
}

/** How a node ended, as reporters hear it. */
export type Finished = Outcome | { status: 'skipped'; reason: string };

export interface SchedulerEvents {
  started(id: string): void;
  finished(id: string, outcome: Finished): void;
  waiting(id: string, holder: LeaseHolder): void;
  /** A progress line of a running node (a built-in stage's epoch and loss). */
  progress(id: string, line: string): void;
  /** A node's processes ended well and its job slot is free; its results are being committed. */
  processEnded?(id: string): void;
}

/**
 * What the scheduler asks of each node, and nothing about how: the seam between deciding when a
 * node runs (scheduler.ts) and running it (node-runner.ts's localRunner: keys, leases, processes, the
 * cache). Tests give the scheduler a runner of their own, in process, with no files and no sleeps.
 */
export interface NodeRunner {
  /** Key a node whose upstreams are done: a cache hit completes it now; else restore or run it. */
  check(node: NodeDef, upstream: Map<string, UpstreamInfo>): { outcome?: Outcome; keys: NodeKeys; restore?: NodeRecord };
  /** Put a cache hit's outputs in place; undefined when they turned out damaged (run it instead). */
  restore(node: NodeDef, keys: NodeKeys): Promise<Outcome | undefined>;
  /** Run the node; `processEnded` when its processes are gone and only its commit is left. */
  run(node: NodeDef, keys: NodeKeys, upstream: Map<string, UpstreamInfo>, placement: Placement, processEnded: () => void): Promise<Outcome>;
}
