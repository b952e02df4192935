import type { NodeDef } from '../pipeline/types.js';
import { pushAll } from '../util/arrays.js';
import { keyOf } from '../util/hash.js';
import type { ExecKey, PlanKey } from '../util/key-types.js';

/**
 * Everything that decides whether a node's cached result can be reused. Each field says why it
 * is here; a reader can audit in one screen what invalidates the cache. Nothing else is: not
 * comments, key order, stage order, descriptions or resources.
 */
export interface Fingerprint {
  /** Bumped when this layout changes, so an old record is never misread as a match. */
  format: number;
  /** The stage type ('cmd' or a built-in): different code, different result. */
  type: string;
  /** The built-in type's declared version: bumped when its results change for the same inputs. */
  version: number;
  /** The shell command after expression substitution: what actually runs. */
  command?: string;
  /** A built-in stage's resolved parameters (canonical JSON, so key order never matters). */
  params: Record<string, unknown>;
  /**
   * The pipeline params the stage reads. Their values already reach the key through the command
   * or `with`; listing them by name lets `dfwe why` say "param lr changed" rather than
   * "command changed", and covers a param read only to name an output.
   */
  pipelineParams: Record<string, unknown>;
  /** Extra environment of a command: it can change what the command does. */
  env: Record<string, string>;
  /** Content digest of each source file or directory the stage reads. */
  deps: Record<string, string>;
  /** Where outputs go: a node that writes elsewhere is a different node. */
  outs: Record<string, string>;
  /** ML runtime identity (backend, tfjs version, Node major) for stages whose numbers depend on it. */
  runtime?: Record<string, string>;
  /**
   * Upstream nodes, by id: their plan keys in the plan key (computable before anything runs);
   * digests of their outputs in the execution key (so an upstream that reran but produced the
   * same bytes leaves this node cached: early cutoff).
   */
  upstream: Record<string, string>;
}

export const KEY_FORMAT = 2;

export function fingerprint(
  node: NodeDef,
  deps: Record<string, string>,
  upstream: Record<string, string>,
  runtime: Record<string, string> | undefined,
): Fingerprint {
  return {
    format: KEY_FORMAT,
    type: node.type,
    version: node.version,
    command: node.command,
    params: node.params,
    pipelineParams: node.pipelineParams,
    env: node.env,
    deps,
    outs: node.outs,
    runtime: node.mlRuntime ? runtime : undefined,
    upstream,
  };
}

/** The plan key of a fingerprint whose `upstream` holds plan keys. */
export function planKeyOf(fp: Fingerprint): PlanKey {
  return keyOf(fp) as PlanKey;
}

/** The execution key of a fingerprint whose `upstream` holds the digests of the outputs read. */
export function execKeyOf(fp: Fingerprint): ExecKey {
  return keyOf(fp) as ExecKey;
}

export interface FingerprintChange {
  what: string;
  before?: string;
  after?: string;
}

/** The command with each changed param's old value replaced by its new one, in one pass. */
function substituted(command: string, params: FingerprintChange[]): string | undefined {
  const swaps = params.filter((p) => p.before !== undefined && p.before !== '' && p.after !== undefined);
  if (swaps.length === 0) return undefined;
  const pattern = new RegExp(swaps.map((p) => p.before!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).sort((a, b) => b.length - a.length).join('|'), 'g');
  return command.replace(pattern, (m) => swaps.find((p) => p.before === m)!.after!);
}

/** What differs between the fingerprint of the cached run and the current one, for `dfwe why`. */
export function diffFingerprints(before: Fingerprint, after: Fingerprint): FingerprintChange[] {
  const changes: FingerprintChange[] = [];
  const show = (v: unknown): string | undefined => (v === undefined ? undefined : typeof v === 'string' ? v : JSON.stringify(v));
  if (before.format !== after.format) changes.push({ what: 'key format (dfwe upgrade)', before: show(before.format), after: show(after.format) });
  if (before.type !== after.type) changes.push({ what: 'stage type', before: before.type, after: after.type });
  if (before.version !== after.version) changes.push({ what: `stage version of ${after.type}`, before: show(before.version), after: show(after.version) });
  const mapDiff = (label: string, a: Record<string, unknown> = {}, b: Record<string, unknown> = {}): FingerprintChange[] => {
    const out: FingerprintChange[] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ what: `${label} ${k}`, before: show(a[k]), after: show(b[k]) });
    }
    return out;
  };
  const params = mapDiff('param', before.pipelineParams, after.pipelineParams);
  pushAll(changes, params);
  // A param's value reaches the key again through `with` or the command. One edit is said once:
  // a `with` entry or a command that changed only by the params' new values is not listed.
  pushAll(changes, mapDiff('with', before.params, after.params).filter((c) => !params.some((p) => p.before === c.before && p.after === c.after)));
  if (before.command !== after.command && !(before.command !== undefined && substituted(before.command, params) === after.command)) {
    changes.push({ what: 'command', before: before.command, after: after.command });
  }
  pushAll(changes, mapDiff('env', before.env, after.env));
  pushAll(changes, mapDiff('dep', before.deps, after.deps));
  pushAll(changes, mapDiff('out', before.outs, after.outs));
  pushAll(changes, mapDiff('runtime', before.runtime, after.runtime));
  pushAll(changes, mapDiff('upstream', before.upstream, after.upstream));
  return changes;
}
