import { mkdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { digestFile } from '../util/hash.js';
import type { CacheStore } from './store.js';
import type { Digest } from '../util/key-types.js';

/*
 * Objects are sealed with a fixed mtime. Workspace outputs are hardlinks to objects, and root
 * ignores the read-only bit, so a write into a workspace output changes the object itself; it
 * also sets the shared inode's mtime to "now", so one stat shows the object is no longer what
 * was stored. Such an object is quarantined and the node that made it runs again.
 */
export const SEAL_MS = Date.UTC(2000, 0, 1);

export function objectState(store: CacheStore, digest: Digest): 'ok' | 'missing' | 'modified' {
  try {
    return statSync(store.objectPath(digest)).mtimeMs === SEAL_MS ? 'ok' : 'modified';
  } catch {
    return 'missing';
  }
}

/** Present and unmodified since it was stored. */
export function hasObject(store: CacheStore, digest: Digest): boolean {
  return objectState(store, digest) === 'ok';
}

/**
 * Move a damaged object aside (kept for inspection), so it is never served again, and taint its
 * digest with when it was damaged (its mtime, which a write sets; the seal's when the bytes changed
 * under a seal put back, i.e. always) and when that was found (now). A node that was still running
 * once it was damaged, and started before it was found, may have read the damaged bytes, so its
 * result is not served either (lookupResult).
 */
export function quarantine(store: CacheStore, digest: Digest): void {
  mkdirSync(store.quarantineDir, { recursive: true });
  const now = Date.now();
  const damagedAt = Math.min(statSync(store.objectPath(digest), { throwIfNoEntry: false })?.mtimeMs ?? now, now);
  try {
    renameSync(store.objectPath(digest), join(store.quarantineDir, `${digest}-${now}`));
  } catch {
    // already moved by another run
  }
  const taints = store.taints();
  const before = taints.get(digest);
  const taint = { damagedAt: Math.min(before?.damagedAt ?? damagedAt, damagedAt), foundAt: Math.max(before?.foundAt ?? now, now) };
  taints.set(digest, taint);
  try {
    mkdirSync(store.taintedDir, { recursive: true });
    const path = join(store.taintedDir, digest);
    writeFileSync(path, String(taint.foundAt));
    utimesSync(path, taint.damagedAt / 1000, taint.damagedAt / 1000);
  } catch {
    // a cache that cannot be written (then nothing was quarantined either)
  }
}

export function readObject(store: CacheStore, digest: Digest): Buffer {
  return readFileSync(store.objectPath(digest));
}

/** Re-hash one object; one whose bytes no longer match its name is quarantined. */
export function checkObject(store: CacheStore, digest: Digest): boolean {
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
