import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Diagnostic } from './diagnostics.js';
import { isWithin } from './pipeline/paths.js';
import type { Project } from './project.js';

/*
 * Pipeline paths are workspace-relative and cannot name `..` or an absolute path (checked when
 * the pipeline is read). A symlink inside the workspace can still lead out of it; this check
 * follows them: a dep that resolves outside, or an output whose directory does, is an input
 * error unless its real location is under one of the pipeline's `allow_outside` directories.
 */
export function escapeDiagnostics(project: Project): Diagnostic[] {
  const real = (p: string): string | undefined => {
    try {
      return realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const workspace = real(project.workspace) ?? resolve(project.workspace);
  const allowed = project.allowOutside.map((a) => real(resolve(project.workspace, a)) ?? resolve(project.workspace, a));
  const inside = (r: string): boolean => isWithin(r, workspace) || allowed.some((a) => isWithin(r, a));
  // Outputs of a pipeline share a few directories: resolve each once.
  const dirs = new Map<string, string | undefined>();
  const realDir = (d: string): string | undefined => {
    if (dirs.has(d)) return dirs.get(d);
    // An output's directory may not exist yet: its nearest existing ancestor decides.
    const r = real(d) ?? (dirname(d) === d ? undefined : realDir(dirname(d)));
    dirs.set(d, r);
    return r;
  };
  const hint = 'a symlink leads it out of the workspace: list the real location under allow_outside if this is intended';
  const out: Diagnostic[] = [];
  for (const node of project.graph.order) {
    const produced = project.graph.producedDeps.get(node.id)!;
    node.deps.forEach((d, i) => {
      if (produced.has(d)) return;
      const r = real(join(project.workspace, d));
      if (r !== undefined && !inside(r)) out.push({ message: `dependency "${d}" of stage "${node.stage}" is really ${r}, outside the workspace`, location: node.loc.deps[i], hint });
    });
    for (const [name, p] of Object.entries(node.outs)) {
      const r = realDir(dirname(join(project.workspace, p)));
      if (r !== undefined && !inside(r)) out.push({ message: `output "${name}" of stage "${node.stage}" (${p}) would be written in ${r}, outside the workspace`, location: node.loc.outs[name] ?? node.loc.stage, hint });
    }
  }
  return out;
}
