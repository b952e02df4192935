import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Diagnostic } from './diagnostics.js';
import { isWithin } from './pipeline/paths.js';
import type { NodeDef } from './pipeline/types.js';

/*
 * Outputs are workspace-relative and cannot name `..` or an absolute path (checked when the
 * pipeline is read); what a stage reads may also lie in a directory the pipeline lists under
 * `read_only`. A symlink inside the workspace can still lead out of it. Bounds follow them: dfwe
 * writes and seals only what really lies in the workspace or a directory listed under
 * `allow_outside`, and reads only that and the `read_only` directories. Checked when planning
 * (located errors) and again where files are touched, because a stage can make a symlink after
 * planning.
 */
const MISSING = Symbol('missing');

/** The pipeline's directories outside the workspace, as written (absolute, or relative to it). */
export interface OutsideDirs {
  /** allow_outside: written and read through symlinks in the workspace. */
  allow: string[];
  /** read_only: read, never written. */
  readOnly: string[];
}

export const NO_OUTSIDE: OutsideDirs = { allow: [], readOnly: [] };

/** The shape, for what is read back from a memo or a snapshot. */
export function isOutsideDirs(o: unknown): o is OutsideDirs {
  const d = o as OutsideDirs | null;
  return typeof d === 'object' && d !== null && [d.allow, d.readOnly].every((l) => Array.isArray(l) && l.every((x) => typeof x === 'string'));
}

export class Bounds {
  /** The workspace's real path. */
  readonly workspace: string;
  /** The workspace as it was named. */
  private readonly named: string;
  private readonly allowed: string[];
  /** read_only directories, each as written (resolved) and by real path. */
  private readonly readOnly: string[];
  /** What no output may be, contain or lie inside: dfwe's cache, the pipeline file. */
  private readonly guarded: { path: string; what: string }[];

  constructor(workspace: string, outside: OutsideDirs, guarded: readonly { path: string; what: string }[] = []) {
    this.named = resolve(workspace);
    this.workspace = realOr(workspace);
    this.allowed = outside.allow.map((a) => realOr(resolve(workspace, a)));
    this.readOnly = outside.readOnly.flatMap((a) => [resolve(workspace, a), realOr(resolve(workspace, a))]);
    this.guarded = guarded.map((g) => ({ path: realOr(g.path), what: g.what }));
  }

  /**
   * Why an output really at `real` may not be written, or undefined. It is deleted before its
   * stage runs, so it must not be, contain or lie inside the cache or the pipeline file, nor hold
   * version-control metadata.
   */
  forbidden(real: string): string | undefined {
    for (const g of this.guarded) {
      const how = real === g.path ? 'is' : isWithin(g.path, real) ? 'contains' : isWithin(real, g.path) ? 'lies inside' : undefined;
      if (how) return `${how} ${g.what} (${g.path})`;
    }
    const inWorkspace = isWithin(real, this.workspace) ? real.slice(this.workspace.length) : real;
    const vcs = inWorkspace.split('/').find((s) => VCS_DIRS.includes(s));
    if (vcs) return `lies inside version-control metadata (${vcs})`;
    if (real.endsWith('.dfwe-tmp')) return "ends in .dfwe-tmp, which is dfwe's own temp name";
    return undefined;
  }

  /** Version-control metadata inside an existing output directory (checked where it is about to be replaced). */
  holdsVcs(abs: string): string | undefined {
    return VCS_DIRS.find((d) => existsSync(join(abs, d)));
  }

  /** Whether dfwe may write at `real`: the workspace, or allow_outside but not read_only. */
  inside(real: string): boolean {
    if (isWithin(real, this.workspace)) return true;
    return this.allowed.some((a) => isWithin(real, a)) && !this.inReadOnly(real);
  }

  /** Whether dfwe may read `real`: where it may write, and the read_only directories. */
  readable(real: string): boolean {
    return isWithin(real, this.workspace) || this.allowed.some((a) => isWithin(real, a)) || this.inReadOnly(real);
  }

  /**
   * Whether a path as named (before any symlink is followed) is one dfwe may look at: in the
   * workspace or a directory the pipeline lists. Checked before its first stat, so an undeclared
   * path outside is never even looked at.
   */
  declared(abs: string): boolean {
    return this.inWorkspace(abs) || this.readable(abs);
  }

  /** Whether `abs`, as named, lies in the workspace (by its name or its real path). */
  inWorkspace(abs: string): boolean {
    return isWithin(abs, this.named) || isWithin(abs, this.workspace);
  }

  /** Whether `abs` lies in a read_only directory, by the path as written or by its real path. */
  inReadOnly(abs: string): boolean {
    return this.readOnly.some((a) => isWithin(abs, a));
  }

  /**
   * Where a path really is, following every symlink on the way; for a path that does not exist
   * yet, its nearest existing ancestor decides. Undefined when the way is broken (a symlink loop,
   * a file where a directory should be). `memo` (for one plan, when nothing changes meanwhile)
   * keeps what was found, so a sweep's thousands of output directories cost a syscall each.
   */
  realLocation(abs: string, memo?: Map<string, string | typeof MISSING>): string | undefined {
    if (memo) return this.realViaParent(abs, memo);
    const rest: string[] = [];
    for (let p = abs; ; p = dirname(p)) {
      try {
        return join(realpathSync.native(p), ...rest.reverse());
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
      }
      if (dirname(p) === p) return undefined;
      rest.push(basename(p));
    }
  }

  /**
   * realLocation for one plan: a path's real location is its parent's joined with its name unless
   * it is a symlink, so each directory costs one lstat, and only a symlink a realpath. A path
   * that does not exist (or a dangling symlink) is its parent's location joined with its name.
   */
  private realViaParent(p: string, memo: Map<string, string | typeof MISSING>): string | undefined {
    const known = memo.get(p);
    if (typeof known === 'string') return known;
    const parent = dirname(p);
    if (parent === p) {
      const root = realOr(p);
      memo.set(p, root);
      return root;
    }
    const up = this.realViaParent(parent, memo);
    if (up === undefined) return undefined;
    const here = join(up, basename(p));
    // Below a path known to be missing, nothing exists: no syscall needed.
    if (known === MISSING || memo.get(parent) === MISSING) {
      memo.set(p, MISSING);
      return here;
    }
    let st;
    try {
      st = lstatSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
      memo.set(p, MISSING);
      return here;
    }
    if (!st.isSymbolicLink()) {
      memo.set(p, here);
      return here;
    }
    try {
      const real = realpathSync.native(p);
      memo.set(p, real);
      return real;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
      memo.set(p, MISSING);
      return here;
    }
  }

  /**
   * Where writing, deleting or replacing `abs` itself would act: its directory followed, its last
   * component not (an output that is a symlink is replaced, never followed).
   */
  whereWritten(abs: string): string | undefined {
    const dir = this.realLocation(dirname(abs));
    return dir === undefined ? undefined : join(dir, basename(abs));
  }

  /** Whether writing `abs` stays inside; the real location when it does not. */
  outsideWhenWritten(abs: string): string | undefined {
    return this.outsideAt(abs, this.whereWritten(abs));
  }

  /** outsideWhenWritten for a caller that has `where`, whereWritten's answer for `abs`, already. */
  outsideAt(abs: string, where: string | undefined): string | undefined {
    if (where === undefined) return `${abs} (a broken path: a symlink loop or a file where a directory should be)`;
    return this.inside(where) ? undefined : where;
  }
}

function realOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** Real locations found during one plan: outputs of a pipeline share directories, each is resolved once. */
export type RealMemo = Map<string, string | typeof MISSING>;

/** Version-control metadata: an output there would delete a repository's history. */
const VCS_DIRS = ['.git', '.hg', '.svn', '.jj'];

export const OUTSIDE_HINT = 'a symlink leads it out of the workspace: list the real location under allow_outside if this is intended';

/** For what a stage reads and a symlink or its own path leads out of the workspace. */
export const READ_OUTSIDE_HINT = 'list the directory it lies in under read_only (read_only: [DIR]): dfwe then reads it, keys it by content, and never writes there';

/**
 * Outputs whose directory a symlink leads out of the workspace, and outputs that would replace
 * what dfwe must never delete (its cache, the pipeline file, version-control metadata): input
 * errors, located, before anything runs. (Given the project's parts, not the project: project.ts
 * builds on this file.)
 */
export function outputDiagnostics(project: { workspace: string; bounds: Bounds; graph: { order: readonly NodeDef[] } }, nodes: Iterable<NodeDef> = project.graph.order, memo: RealMemo = new Map()): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const node of nodes) {
    for (const [name, p] of Object.entries(node.outs)) {
      const abs = join(project.workspace, p);
      const r = project.bounds.realLocation(dirname(abs), memo);
      const location = node.loc.outs[name] ?? node.loc.stage;
      if (r !== undefined && !project.bounds.inside(r)) {
        const readOnly = project.bounds.inReadOnly(r);
        out.push({ message: `output "${name}" of stage "${node.stage}" (${p}) would be written in ${r}, ${readOnly ? 'which the pipeline lists under read_only: dfwe never writes there' : 'outside the workspace'}`, location, hint: readOnly ? undefined : OUTSIDE_HINT });
        continue;
      }
      const why = project.bounds.forbidden(r === undefined ? abs : join(r, basename(abs)));
      if (why) out.push({ message: `output "${name}" of stage "${node.stage}" (${p}) ${why}: dfwe deletes an output before its stage runs, so it cannot be there`, location });
    }
  }
  return out;
}
