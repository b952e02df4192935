import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isExecKey, type ExecKey } from '../util/key-types.js';
import type { GroupCommit } from './group-commit.js';
import { objectsOf, readRecord, writeRecord, type NodeRecord } from './records.js';
import { verifyRecord } from './restore.js';
import type { CacheStore } from './store.js';

/*
 * Where results are kept, by execution key. The engine asks a cache four things: is there a result
 * for this key (lookup), make its contents available here, checked (get), keep this result (put),
 * and which keys do you hold (records). The local store is the first implementation, and the one
 * every other works through: outputs are committed into it and restored from it (hardlinks to its
 * objects), so another cache (a store other machines share) moves results between itself and the
 * local store, and is never a branch in the scheduler.
 *
 * Planning reads the local store's records synchronously (node-keys.ts lookupResult: 20,000
 * lookups in a no-op status cannot each be a promise); this interface is what a run's nodes use
 * once they are past planning, where waiting on another machine is possible.
 */
export interface Cache {
  /** The record of a key, if held whole and sealed (an edited or damaged one is not). */
  lookup(key: ExecKey): Promise<NodeRecord | undefined>;
  /**
   * Make a result's objects present in the local store, each checked against its digest (up to
   * `verifyUpTo` bytes: bigger ones by their seal only). False when one is missing or its bytes are
   * not what the record names: that result is not served, and its damaged objects are quarantined.
   */
  get(record: NodeRecord, verifyUpTo: number): Promise<boolean>;
  /**
   * Keep a result whose objects are in the local store: its objects are durable before its record
   * is written, and the record is durable when this resolves. A put that fails leaves no record.
   */
  put(record: NodeRecord): Promise<void>;
  /** A put is likely soon (a stage started): what it needs may get ready meanwhile. */
  warm?(): void;
  /** The keys of the records it holds (well-formed names; each may still fail its lookup). */
  records(): AsyncIterable<ExecKey>;
}

/** The cache directory on this machine (store.ts's layout), made durable by a group commit. */
export class LocalCache implements Cache {
  constructor(
    readonly store: CacheStore,
    private readonly commits: GroupCommit,
  ) {}

  async lookup(key: ExecKey): Promise<NodeRecord | undefined> {
    return readRecord(this.store, key);
  }

  async get(record: NodeRecord, verifyUpTo: number): Promise<boolean> {
    return verifyRecord(this.store, record, verifyUpTo);
  }

  async put(record: NodeRecord): Promise<void> {
    const { store } = this;
    // Group commit: objects durable, then the record that names them, then durable too.
    await this.commits.durable(objectsOf(record).map((d) => store.objectPath(d)));
    writeRecord(store, record);
    try {
      await this.commits.durable([store.recordPath(record.execKey)]);
    } catch (err) {
      rmSync(store.recordPath(record.execKey), { force: true });
      throw err;
    }
  }

  warm(): void {
    this.commits.warm();
  }

  async *records(): AsyncIterable<ExecKey> {
    yield* recordKeys(this.store);
  }
}

/** The keys the local store has records for, by their file names (records/ab/<key>.json). */
export function* recordKeys(store: CacheStore): Iterable<ExecKey> {
  for (const shard of listDir(store.recordsDir)) {
    if (!/^[0-9a-f]{2}$/.test(shard)) continue;
    for (const name of listDir(join(store.recordsDir, shard))) {
      const key = name.endsWith('.json') ? name.slice(0, -5) : '';
      if (isExecKey(key) && key.startsWith(shard)) yield key;
    }
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
