import { objectsOf } from './records.js';
import type { RemoteCache } from './remote-cache.js';

/*
 * gc of a shared cache, by the local gc's rule: the records the given pipelines reach (their
 * cached nodes, pins, the last runs) are kept, with every object they name; every other record
 * goes, and so does every object no kept record names. A record that is not served (unsigned,
 * mis-signed, damaged: see remote-cache.ts) is never reached, so planted ones go too. Records go
 * before objects, so that a reader holding a kept record still finds its objects; a push racing
 * the gc can lose objects its new record names, and that record is then not served (its objects
 * are missing), never served wrong. Uploads in parts left unfinished for a day are aborted.
 */

export interface RemoteGcPlan {
  records: string[];
  objects: string[];
  bytes: number;
  keptRecords: number;
  keptObjects: number;
}

/** An unfinished upload older than this was left by a writer that died. */
export const ABANDONED_UPLOAD_MS = 24 * 3600 * 1000;

export async function planRemoteGc(remote: RemoteCache, liveRecords: ReadonlySet<string>): Promise<RemoteGcPlan> {
  const records: string[] = [];
  const liveObjects = new Set<string>();
  let keptRecords = 0;
  for await (const key of remote.records()) {
    const record = liveRecords.has(key) ? await remote.lookup(key) : undefined;
    if (!record) {
      records.push(key);
      continue;
    }
    keptRecords++;
    for (const d of objectsOf(record)) liveObjects.add(d);
  }
  const objects: string[] = [];
  let bytes = 0;
  let keptObjects = 0;
  for await (const { name, size } of remote.remote.entries('objects/')) {
    const digest = name.slice('objects/'.length);
    if (liveObjects.has(digest)) keptObjects++;
    else {
      objects.push(digest);
      bytes += size;
    }
  }
  return { records, objects, bytes, keptRecords, keptObjects };
}

export async function applyRemoteGc(remote: RemoteCache, plan: RemoteGcPlan): Promise<number> {
  await remote.remote.delete(plan.records.map((k) => `records/${k}.json`));
  await remote.remote.delete(plan.objects.map((d) => `objects/${d}`));
  return remote.remote.abandonUploads(ABANDONED_UPLOAD_MS);
}
