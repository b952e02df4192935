import { posix } from 'node:path';

/**
 * Normalise a workspace-relative path. Returns undefined for paths that leave the workspace
 * (absolute, or `..` above the root): a pipeline must not read or write outside it by accident.
 */
export function normalizeWorkspacePath(p: string): string | undefined {
  if (p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p)) return undefined;
  const n = posix.normalize(p.replace(/\\/g, '/')).replace(/\/+$/, '');
  if (n === '..' || n.startsWith('../') || n === '' || n === '.') return undefined;
  return n;
}

/**
 * A path a stage reads (a dependency, a dataset, a checkpoint to merge), normalised. Unlike an
 * output it may name a place outside the workspace (absolute, or `..` above the root), which
 * planning accepts only inside a directory the pipeline lists under `read_only`.
 */
export function normalizeReadPath(p: string): string | undefined {
  const inside = normalizeWorkspacePath(p);
  if (inside !== undefined || !isOutsideForm(p)) return inside;
  return posix.normalize(p.replace(/\\/g, '/')).replace(/(.)\/+$/, '$1');
}

/** Whether a pipeline path is written as one outside the workspace (absolute, or `..` above the root). */
export function isOutsideForm(p: string): boolean {
  if (p.startsWith('/')) return true;
  const n = posix.normalize(p.replace(/\\/g, '/'));
  return n === '..' || n.startsWith('../');
}

/** True when `inner` is `outer` or lies inside it. */
export function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer + '/');
}
