import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CacheStore } from '../cache/store.js';
import { runsDir } from './run-log.js';
import { listRuns, readServed } from './runs.js';

/** The run history through gc: the last `keep` runs stay, with every result their served sets name; older entries go. */
export function planHistoryGc(store: CacheStore, keep: number): { records: Set<string>; keptRuns: number; remove: { path: string; size: number }[] } {
  // Unreadable history files are left for the user to look at.
  const { runs } = listRuns(store);
  const kept = keep > 0 ? runs.slice(-keep) : [];
  const records = new Set<string>();
  const servedKept = new Set<string>();
  for (const r of kept) {
    const served = r.end?.served;
    if (!served) continue;
    servedKept.add(served);
    for (const [, , execKey] of readServed(store, served)?.nodes ?? []) records.add(execKey);
  }
  const size = (p: string): number => statSync(p, { throwIfNoEntry: false })?.size ?? 0;
  const remove = runs.slice(0, runs.length - kept.length).map((r) => join(runsDir(store), `${r.id}.jsonl`));
  let servedFiles: string[] = [];
  try {
    servedFiles = readdirSync(join(runsDir(store), 'served'));
  } catch {
    // no served sets yet
  }
  for (const n of servedFiles) if (!servedKept.has(n.replace(/\.json$/, ''))) remove.push(join(runsDir(store), 'served', n));
  return { records, keptRuns: kept.length, remove: remove.map((path) => ({ path, size: size(path) })) };
}
