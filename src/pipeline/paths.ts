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

/** True when `inner` is `outer` or lies inside it. */
export function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(outer + '/');
}
