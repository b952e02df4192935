import { existsSync, readdirSync, statSync } from 'node:fs';
import { UserError } from '../diagnostics.js';
import { join } from 'node:path';
import type { CacheStore } from '../cache/store.js';
import { runsDir, servedPath } from './run-log.js';
import { listRuns } from './runs.js';
import { readServed } from './served-set.js';

/** The run history through gc: the last `keep` runs stay, with every result their served sets name; older entries go. */
export function planHistoryGc(store: CacheStore, keep: number): { records: Set<string>; keptRuns: number; remove: { path: string; size: number }[] } {
  // A history file or served set that cannot be read may be what keeps a result: gc stops, as for
  // a damaged pin, rather than guess (unreadable history files are left for the user to look at).
  const { runs, unreadable } = listRuns(store);
  const kept = keep > 0 ? runs.slice(-keep) : [];
  const records = new Set<string>();
  const servedKept = new Set<string>();
  const damaged = new Set(keep > 0 ? unreadable : []);
  for (const r of kept) {
    const served = r.end?.served;
    if (!served) continue;
    servedKept.add(served);
    const set = readServed(store, served);
    if (set) for (const [, , execKey] of set.nodes) records.add(execKey);
    else if (existsSync(servedPath(store, served))) damaged.add(servedPath(store, served));
  }
  if (damaged.size > 0) {
    throw new UserError({
      message: `gc: ${[...damaged].join(', ')} ${damaged.size === 1 ? 'is' : 'are'} damaged run history: gc would drop the results ${damaged.size === 1 ? 'it keeps' : 'they keep'}`,
      hint: 'move or remove the damaged file (or keep no runs: --keep-runs 0), then gc again',
    });
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
