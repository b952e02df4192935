/*
 * Where a node's process runs. An executor is one file under executors/ (its kind: name,
 * capabilities, option schema, how to cancel a job; and its implementation, loaded when a run
 * uses it) plus one line in executors/index.ts. The engine asks only what is here.
 */

/**
 * How to find a launched job again: kept in the lease of the node's outputs, so that a run
 * that breaks the lease of a run that died can stop what it left running.
 */
export interface JobHandle {
  executor: string;
  id: string | number;
  /** The start time of the job's leader process (Linux), so that a pid reused since is never taken for it. */
  start?: string;
}

/**
 * The environment variable that tags every process of a launch: `<run tag><n>`, where the run tag
 * (runTagOf) names the engine process. A launch is found by it when its handle never reached its
 * lease (the engine or its process starter was killed in between).
 */
export const LAUNCH_TAG = 'DFWE_LAUNCH';

/** The prefix of every launch tag of the engine process `pid` (started at `start`, against pid reuse); undefined where start times are unknown. */
export function runTagOf(holder: { pid: number; start?: string }): string | undefined {
  return holder.start === undefined ? undefined : `${holder.pid}.${holder.start}.`;
}

/** One process to run for a node: the engine has written its spec and cleared its outputs. */
export interface Launch {
  nodeId: string;
  /** This launch's tag (LAUNCH_TAG), also in `env`. */
  tag: string;
  argv: string[];
  cwd: string;
  /** The complete environment of the process. */
  env: Record<string, string | undefined>;
  /** stdout and stderr both go here, in the order printed. */
  logPath: string;
  resources: Record<string, number>;
  /** This executor's own settings for the node (under its name in the pipeline), as its kind merged them. */
  options: Record<string, unknown>;
  signal: AbortSignal;
  /** How to stop what was launched if this run dies and another breaks its lease. */
  onHandle: (handle: JobHandle) => void;
  /** A progress line: the stage's own output (local) or the job's state (Slurm). */
  onLine?: (line: string) => void;
  /** Its stderr lines are progress too, not only its stdout's (`dfwe run -v`). */
  allOutput?: boolean;
}

export interface Finished {
  /** Null when the process was killed or the job never ran to an exit. */
  exitCode: number | null;
  /** Why it did not exit cleanly, when the exit code does not say it (signal, Slurm state). */
  reason?: string;
  /** Where it ran: this machine, or the cluster node. */
  host: string;
  /** The most resident memory its processes held at once, where the executor measures it. */
  peakRssBytes?: number;
}

/** A connected executor: launches jobs for one run. */
export interface Executor {
  launch(l: Launch): Promise<Finished>;
  /**
   * Stop polling and the like; jobs in flight were cancelled through their signals. A promise
   * where a process of its own ends with it (resolved once that process has exited).
   */
  close(): void | Promise<void>;
}

/** An executor as the engine plans with it, before (and without) loading its implementation. */
export interface ExecutorKind {
  name: string;
  description: string;
  /** The cluster allocates cpus and GPUs itself: the run keeps no local capacity. */
  allocatesResources: boolean;
  /** --jobs when not given: undefined for the number of cores. */
  defaultJobs?: number;
  /** How long after a job ends its outputs may take to be visible here (NFS attribute caches). */
  outputsVisibleWithinMs: number;
  /** A shell command's output lines are shown as progress (else they go to its log only). */
  commandOutputIsProgress: boolean;
  /** JSON Schema of its settings, under its name at the pipeline's top level and in a stage. */
  optionsSchema?: object;
  /** A node's settings: the pipeline's, then the stage's. */
  mergeOptions?(pipeline: Record<string, unknown> | undefined, stage: Record<string, unknown> | undefined): Record<string, unknown>;
  /** Checks that it can be used here (a controller answers), then connects. */
  connect(): Promise<Executor>;
  /** Stop a job a dead run left (its lease is being broken); `holderHost` is where that run was. Best effort. */
  cancel(job: JobHandle, holderHost: string): void;
  /**
   * Stop every job a dead run launched, found by their tags (LAUNCH_TAG) starting with `runTag`:
   * also those whose handles never reached a lease. Returns once none of them runs. Best effort.
   */
  stopRun(runTag: string, holderHost: string): void;
}

/** Tokens of resource r in a run: cpu defaults to --jobs (at least 1); any other, to none. */
export function capacityFor(capacity: Record<string, number>, jobs: number, r: string): number {
  return r === 'cpu' ? Math.max(capacity.cpu ?? jobs, 1) : capacity[r] ?? 0;
}
