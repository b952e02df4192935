import { lstatSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fsx.js';
import type { CacheStore } from './store.js';
import { objectsOf, readRecord } from './records.js';
import { recordKeys } from './cache.js';
import { isDigest, isExecKey } from '../util/key-types.js';
import { checkObject, SEAL_MS } from './objects.js';

/** Files below a directory with their sizes (missing directory: none). */
function walk(dir: string, out: { path: string; size: number }[] = []): { path: string; size: number }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    const st = lstatSync(p);
    if (st.isDirectory()) walk(p, out);
    else out.push({ path: p, size: st.size });
  }
  return out;
}

export interface Pin {
  name: string;
  pipeline: string;
  at: string;
  records: string[];
}

export function pinsDir(store: CacheStore): string {
  return join(store.root, 'pins');
}

/** The pins, and the files in pins/ that are not one (never ignored: gc would drop what they keep). */
export function readPins(store: CacheStore): { pins: Pin[]; damaged: string[] } {
  let names: string[];
  try {
    names = readdirSync(pinsDir(store)).filter((n) => n.endsWith('.json'));
  } catch {
    return { pins: [], damaged: [] };
  }
  const pins: Pin[] = [];
  const damaged: string[] = [];
  for (const n of names) {
    const path = join(pinsDir(store), n);
    try {
      const p: unknown = JSON.parse(readFileSync(path, 'utf8'));
      const pin = p as Pin;
      if (p && typeof p === 'object' && typeof pin.name === 'string' && typeof pin.pipeline === 'string' && Array.isArray(pin.records) && pin.records.every((r) => typeof r === 'string')) pins.push(pin);
      else damaged.push(path);
    } catch {
      damaged.push(path);
    }
  }
  return { pins, damaged };
}

export function writePin(store: CacheStore, pin: Pin): void {
  writeFileAtomic(join(pinsDir(store), `${pin.name}.json`), JSON.stringify(pin, null, 2));
}

export function removePin(store: CacheStore, name: string): boolean {
  const p = join(pinsDir(store), `${name}.json`);
  try {
    statSync(p);
  } catch {
    return false;
  }
  rmSync(p);
  return true;
}

export interface GcPlan {
  records: { path: string; size: number }[];
  objects: { path: string; size: number }[];
  other: { path: string; size: number }[];
  bytes: number;
  keptRecords: number;
  keptObjects: number;
}

/**
 * The names dfwe gives what it writes, relative to their directory: gc deletes nothing else, so a
 * file someone put in the cache stays where it is. A temp name is `<name>.tmp-<pid>-<n>`
 * (util/fsx.ts); a live run's staging directory (tmp/run-<pid>-…) is left to cleanDeadStaging.
 */
const TEMP = String.raw`(?:\.tmp-\d+-[0-9a-z]+)?`;
const DFWE_NAMES = {
  record: new RegExp(String.raw`^/[0-9a-f]{2}/[0-9a-f]{32}\.json${TEMP}$`),
  object: new RegExp(String.raw`^/[0-9a-f]{2}/[0-9a-f]{32}${TEMP}$`),
  quarantined: /^\/[0-9a-f]{32}-\d+$/,
  tmp: /^\/[^/]+\.tmp-\d+-[0-9a-z]+$/,
};

/**
 * What gc removes: every record not in `liveRecords`, every object no live record names (logs
 * included), quarantined objects and leftover temp files. Live attempts' logs are kept too.
 */
export function planGc(store: CacheStore, liveRecords: Set<string>, extraObjects: Set<string>, history: { path: string; size: number }[] = []): GcPlan {
  const liveObjects = new Set(extraObjects);
  const records: GcPlan['records'] = [];
  let keptRecords = 0;
  for (const f of walk(store.recordsDir)) {
    if (!DFWE_NAMES.record.test(f.path.slice(store.recordsDir.length))) continue;
    const key = /([0-9a-f]{32})\.json$/.exec(f.path)?.[1];
    if (isExecKey(key) && liveRecords.has(key)) {
      const r = readRecord(store, key);
      if (r) {
        objectsOf(r).forEach((d) => liveObjects.add(d));
        keptRecords++;
        continue;
      }
    }
    records.push(f);
  }
  const objects: GcPlan['objects'] = [];
  let keptObjects = 0;
  for (const f of walk(store.objectsDir)) {
    if (!DFWE_NAMES.object.test(f.path.slice(store.objectsDir.length))) continue;
    const name = f.path.slice(f.path.lastIndexOf('/') + 1);
    if (liveObjects.has(name)) keptObjects++;
    else objects.push(f);
  }
  const other = [
    ...walk(store.quarantineDir).filter((f) => DFWE_NAMES.quarantined.test(f.path.slice(store.quarantineDir.length))),
    ...walk(store.tmpDir).filter((f) => DFWE_NAMES.tmp.test(f.path.slice(store.tmpDir.length))),
    ...history,
  ];
  const bytes = [...records, ...objects, ...other].reduce((a, f) => a + f.size, 0);
  return { records, objects, other, bytes, keptRecords, keptObjects };
}

export function applyGc(store: CacheStore, plan: GcPlan): void {
  for (const f of [...plan.records, ...plan.objects, ...plan.other]) rmSync(f.path, { force: true });
  // Lease files of processes that died (reader templates, lease journals, temps): a live one's heartbeat keeps its
  // mtime young, and gc holds the cache's writer lease, so no run is taking one meanwhile.
  const stale = (p: string): boolean => Date.now() - (statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 5 * 60_000;
  const list = (dir: string): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  for (const n of list(store.locksDir)) if (/^\.(reader|leases|tmp)-/.test(n) && stale(join(store.locksDir, n))) rmSync(join(store.locksDir, n), { force: true });
  // Reader tokens, a directory per lease name.
  const readers = join(store.locksDir, 'readers');
  for (const name of list(readers)) {
    const dir = join(readers, name);
    for (const t of list(dir)) if (stale(join(dir, t))) rmSync(join(dir, t), { force: true });
    try {
      rmdirSync(dir);
    } catch {
      // a live reader's token is in it
    }
  }
}

export interface VerifyReport {
  objects: number;
  bytes: number;
  corrupt: string[];
  resealed: number;
  records: number;
  /** Records that fail their checksum, shape or manifest: never served; gc removes them. */
  damagedRecords: string[];
}

/** Re-hash every object (a wrong digest is quarantined: its node recomputes on the next run) and check every record. */
export function verifyObjects(store: CacheStore): VerifyReport {
  const report: VerifyReport = { objects: 0, bytes: 0, corrupt: [], resealed: 0, records: 0, damagedRecords: [] };
  for (const key of recordKeys(store)) {
    report.records++;
    if (!readRecord(store, key)) report.damagedRecords.push(key);
  }
  for (const f of walk(store.objectsDir)) {
    const name = f.path.slice(f.path.lastIndexOf('/') + 1);
    if (!isDigest(name)) continue; // a temp file of a commit in progress
    report.objects++;
    report.bytes += f.size;
    if (!checkObject(store, name)) {
      report.corrupt.push(name);
    } else if (statSync(f.path).mtimeMs !== SEAL_MS) {
      // Intact content whose seal moved (touched): seal it again rather than throw it away.
      utimesSync(f.path, SEAL_MS / 1000, SEAL_MS / 1000);
      report.resealed++;
    }
  }
  return report;
}
