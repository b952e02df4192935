import { lstatSync, readdirSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { FsShapeError, kindOf } from '../util/fs-safe.js';
import { digestBytes } from '../util/hash.js';
import type { Digest } from '../util/key-types.js';

/*
 * A directory as dfwe sees it, walked one way for every use: an output being committed, a
 * cached output being checked, a dependency being keyed. One walk and one manifest format, so
 * the digest a commit records is the digest a consumer recomputes.
 */

export interface TreeFile {
  rel: string;
  st: Stats;
}

export interface TreeLink {
  rel: string;
  target: string;
}

export interface Tree {
  files: TreeFile[];
  /** Symlinks, kept as links (outputs only: a dependency's links are followed). */
  links: TreeLink[];
  /** Directories with nothing in them: part of what a directory holds. */
  emptyDirs: string[];
}

/**
 * How to treat symlinks: an output's are its content and are never followed; a dependency's
 * are followed (a dependency is what the stage reads), but only to places inside the bounds,
 * and a loop is an error rather than a walk without end.
 */
export type Walk = { follow: false } | { follow: true; bounds: Inside };

/** Where a dependency's symlinks may lead. */
export interface Inside {
  inside(real: string): boolean;
}

/** The files, links and empty directories under `root` (a directory), in a stable order. */
export function readTree(root: string, walk: Walk, what = root): Tree {
  const tree: Tree = { files: [], links: [], emptyDirs: [] };
  const ancestors = new Set<string>();
  const visit = (dir: string, rel: string, st: Stats): void => {
    const id = `${st.dev}:${st.ino}`;
    if (ancestors.has(id)) throw new FsShapeError(dir, `${what}: ${rel} leads back into a directory that contains it (a symlink loop)`);
    ancestors.add(id);
    const names = readdirSync(dir).sort();
    if (names.length === 0 && rel !== '') tree.emptyDirs.push(rel);
    for (const name of names) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      let s = lstatSync(abs);
      if (s.isSymbolicLink()) {
        if (!walk.follow) {
          tree.links.push({ rel: r, target: readlinkSync(abs) });
          continue;
        }
        s = followLink(abs, r, walk.bounds, what);
      }
      if (s.isDirectory()) visit(abs, r, s);
      else if (s.isFile()) tree.files.push({ rel: r, st: s });
      else throw new FsShapeError(abs, `${what}: ${r} is ${kindOf(s)}; only regular files, directories${walk.follow ? '' : ' and symlinks'} can be ${walk.follow ? 'hashed' : 'stored'}`);
    }
    ancestors.delete(id);
  };
  visit(root, '', statSync(root));
  return tree;
}

/** The stat of what a symlink inside a dependency leads to, if that is inside the bounds. */
function followLink(abs: string, rel: string, bounds: Inside, what: string): Stats {
  let real: string;
  try {
    real = realpathSync(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new FsShapeError(abs, `${what}: ${rel} is a symlink loop`);
    if (code === 'ENOENT') throw new FsShapeError(abs, `${what}: ${rel} is a symlink to ${readlinkSync(abs)}, which does not exist`);
    throw err;
  }
  if (!bounds.inside(real)) throw new FsShapeError(abs, `${what}: ${rel} is a symlink to ${real}, outside the workspace (list where it lies under read_only if this is intended)`);
  return statSync(real);
}

export interface ManifestFile {
  path: string;
  digest: string;
  exec: boolean;
}

export interface ManifestLink {
  path: string;
  target: string;
}

/**
 * The digest of a directory: every file (path, exec bit, content digest), every symlink (path,
 * target) and every empty directory, sorted by path. JSON lines, so no name can forge another.
 */
export function manifestDigest(files: readonly ManifestFile[], links: readonly ManifestLink[] = [], emptyDirs: readonly string[] = []): Digest {
  const lines: [string, string, string][] = [
    ...files.map((f): [string, string, string] => [f.path, f.exec ? 'x' : 'f', f.digest]),
    ...links.map((l): [string, string, string] => [l.path, 'l', l.target]),
    ...emptyDirs.map((d): [string, string, string] => [d, 'd', '']),
  ];
  lines.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return digestBytes(`dir\0${lines.map((l) => JSON.stringify(l)).join('\n')}`);
}

/** The digest of a symlink standing where a file or directory was expected: never equal to either. */
export function linkDigest(target: string): string {
  return digestBytes(`link\0${target}`);
}
