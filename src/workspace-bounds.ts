import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Diagnostic } from './diagnostics.js';
import { isWithin } from './pipeline/paths.js';
import type { Project } from './project.js';
import type { NodeDef } from './pipeline/types.js';

/*
 * Pipeline paths are workspace-relative and cannot name `..` or an absolute path (checked when
 * the pipeline is read). A symlink inside the workspace can still lead out of it. Bounds follow
 * them: dfwe reads, writes and seals only what really lies in the workspace, the cache, or a
 * directory the pipeline lists under `allow_outside`. Checked when planning (located errors) and
 * again where files are touched, because a stage can make a symlink after planning.
 */
const MISSING = Symbol('missing');

export class Bounds {
  /** The workspace's real path. */
  readonly workspace: string;
  private readonly allowed: string[];
  /** What no output may be, contain or lie inside: dfwe's cache, the pipeline file. */
  private readonly guarded: { path: string; what: string }[];

  constructor(workspace: string, allowOutside: readonly string[], guarded: readonly { path: string; what: string }[] = []) {
    this.workspace = realOr(workspace);
    this.allowed = allowOutside.map((a) => realOr(resolve(workspace, a)));
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

  inside(real: string): boolean {
    return isWithin(real, this.workspace) || this.allowed.some((a) => isWithin(real, a));
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
    const r = this.whereWritten(abs);
    if (r === undefined) return `${abs} (a broken path: a symlink loop or a file where a directory should be)`;
    return this.inside(r) ? undefined : r;
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

/**
 * Outputs whose directory a symlink leads out of the workspace, and outputs that would replace
 * what dfwe must never delete (its cache, the pipeline file, version-control metadata): input
 * errors, located, before anything runs.
 */
export function outputDiagnostics(project: Project, nodes: Iterable<NodeDef> = project.graph.order, memo: RealMemo = new Map()): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const node of nodes) {
    for (const [name, p] of Object.entries(node.outs)) {
      const abs = join(project.workspace, p);
      const r = project.bounds.realLocation(dirname(abs), memo);
      const location = node.loc.outs[name] ?? node.loc.stage;
      if (r !== undefined && !project.bounds.inside(r)) {
        out.push({ message: `output "${name}" of stage "${node.stage}" (${p}) would be written in ${r}, outside the workspace`, location, hint: OUTSIDE_HINT });
        continue;
      }
      const why = project.bounds.forbidden(r === undefined ? abs : join(r, basename(abs)));
      if (why) out.push({ message: `output "${name}" of stage "${node.stage}" (${p}) ${why}: dfwe deletes an output before its stage runs, so it cannot be there`, location });
    }
  }
  return out;
}
