import { mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { digestFile } from '../util/hash.js';
import type { CacheStore } from './store.js';

/*
 * Objects are sealed with a fixed mtime. Workspace outputs are hardlinks to objects, and root
 * ignores the read-only bit, so a write into a workspace output changes the object itself; it
 * also sets the shared inode's mtime to "now", so one stat shows the object is no longer what
 * was stored. Such an object is quarantined and the node that made it runs again.
 */
export const SEAL_MS = Date.UTC(2000, 0, 1);

export function objectState(store: CacheStore, digest: string): 'ok' | 'missing' | 'modified' {
  try {
    return statSync(store.objectPath(digest)).mtimeMs === SEAL_MS ? 'ok' : 'modified';
  } catch {
    return 'missing';
  }
}

/** Present and unmodified since it was stored. */
export function hasObject(store: CacheStore, digest: string): boolean {
  return objectState(store, digest) === 'ok';
}

/** Move a damaged object aside (kept for inspection), so it is never served again. */
export function quarantine(store: CacheStore, digest: string): void {
  mkdirSync(store.quarantineDir, { recursive: true });
  try {
    renameSync(store.objectPath(digest), join(store.quarantineDir, `${digest}-${Date.now()}`));
  } catch {
    // already moved by another run
  }
}

export function readObject(store: CacheStore, digest: string): Buffer {
  return readFileSync(store.objectPath(digest));
}

/** Re-hash one object; one whose bytes no longer match its name is quarantined. */
export function checkObject(store: CacheStore, digest: string): boolean {
  let actual: string | undefined;
  try {
    actual = digestFile(store.objectPath(digest), { follow: false });
  } catch {
    actual = undefined;
  }
  if (actual === digest) return true;
  quarantine(store, digest);
  return false;
}
