/**
 * Everything a built-in stage needs to run, serialised for `dfwe exec SPEC`: the same file runs
 * unchanged under another executor or on another machine that sees the same paths.
 */
export interface NodeSpec {
  format: 1;
  nodeId: string;
  type: string;
  version: number;
  params: Record<string, unknown>;
  workspace: string;
  /** Absolute output paths, by name. */
  outs: Record<string, string>;
  outKinds: Record<string, 'file' | 'dir' | 'any'>;
  /** Where the stage writes its metrics (JSON), if it reports any. */
  metricsPath: string;
  /** An empty directory for the stage's scratch files (a search's candidates), removed after it. */
  scratch: string;
  /**
   * A directory kept across attempts of this node's key, for work an attempt may resume (a
   * search's scored candidates); the stage removes what it no longer needs once it succeeds.
   */
  resume: string;
  /** The stage's `cpu` resource, when it declares one: how many threads it may use (else the machine's cores). */
  cpus?: number;
  /** ML runtime the engine keyed the node on; the stage must run on it. */
  runtime?: Record<string, string>;
}
