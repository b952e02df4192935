import { CACHE_LEASE, LeaseManager, type Lease } from '../cache/lease.js';
import type { CacheStore } from '../cache/store.js';
import { readAttempt } from '../cache/records.js';
import { applyGc, planGc, readPins, removePin, verifyObjects, writePin } from '../cache/maintenance.js';
import { UserError } from '../diagnostics.js';
import { plan } from '../engine/planner.js';
import type { Project } from '../project.js';
import { open, type GlobalOptions } from './common.js';
import { planHistoryGc } from '../history/gc.js';

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Results a pipeline reaches now: its cached nodes' records, and each node's last run. */
function reached(project: Project): { records: Set<string>; objects: Set<string> } {
  const records = new Set<string>();
  const objects = new Set<string>();
  for (const d of plan(project).decisions) if (d.state === 'cached' && d.execKey) records.add(d.execKey);
  for (const n of project.graph.order) {
    const a = readAttempt(project.store, project.workspace, n.id);
    if (a?.status === 'succeeded') records.add(a.execKey);
    if (a?.log) objects.add(a.log);
  }
  return { records, objects };
}

/**
 * gc holds the cache's writer lease while it plans and removes; every run holds a reader lease
 * for its whole length. So gc never removes what a run is committing, and a run that starts
 * during gc waits for it.
 */
function lockForGc(store: CacheStore): { lease: Lease; leases: LeaseManager } {
  store.claim();
  const leases = new LeaseManager(store.locksDir, 'dfwe gc');
  const r = leases.tryWrite(CACHE_LEASE, 'dfwe gc');
  if ('release' in r) return { lease: r, leases };
  leases.close();
  throw new UserError(`${r.what === 'dfwe gc' ? 'another dfwe gc' : `a run is in progress (${r.what})`} (pid ${r.pid} on ${r.host}, since ${r.since}): gc would race it; try again when it ends`);
}

export async function gcCommand(pipelines: string[], opts: { dryRun?: boolean; keepRuns?: string }, g: GlobalOptions): Promise<number> {
  const keepRuns = opts.keepRuns === undefined ? KEEP_RUNS : Number(opts.keepRuns);
  if (!Number.isInteger(keepRuns) || keepRuns < 0) throw new UserError(`--keep-runs takes a whole number of runs (0: none), not "${opts.keepRuns}"`);
  if (g.only?.length) throw new UserError('gc considers whole pipelines: --only would make the rest of a sweep look unreachable');
  const projects = await Promise.all((pipelines.length ? pipelines : [undefined]).map((p) => open(p, g)));
  const store = projects[0]!.store;
  if (projects.some((p) => p.store.root !== store.root)) throw new UserError('gc: the pipelines use different caches');
  const { lease, leases } = lockForGc(store);
  try {
    return collect(projects, store, opts, keepRuns);
  } finally {
    lease.release();
    leases.close();
  }
}

/** How many of the latest runs gc keeps, with their results, unless told (`--keep-runs`). */
const KEEP_RUNS = 10;

function collect(projects: Project[], store: CacheStore, opts: { dryRun?: boolean }, keepRuns: number): number {
  const liveRecords = new Set<string>();
  const liveObjects = new Set<string>();
  for (const p of projects) {
    const r = reached(p);
    r.records.forEach((k) => liveRecords.add(k));
    r.objects.forEach((d) => liveObjects.add(d));
  }
  const { pins, damaged } = readPins(store);
  if (damaged.length) throw new UserError(`gc: ${damaged.join(', ')} ${damaged.length === 1 ? 'is not a readable pin' : 'are not readable pins'}; gc would drop what ${damaged.length === 1 ? 'it keeps' : 'they keep'}. Fix or remove ${damaged.length === 1 ? 'it' : 'them'} first`);
  for (const pin of pins) pin.records.forEach((k) => liveRecords.add(k));
  const history = planHistoryGc(store, keepRuns);
  history.records.forEach((k) => liveRecords.add(k));
  const plan = planGc(store, liveRecords, liveObjects, history.remove);
  const verb = opts.dryRun ? 'would remove' : 'removed';
  if (!opts.dryRun) {
    applyGc(store, plan);
    store.cleanDeadStaging();
  }
  process.stdout.write(
    `dfwe gc: ${verb} ${plan.records.length} records, ${plan.objects.length} objects and ${plan.other.length} other files: ${mib(plan.bytes)} (${plan.bytes} bytes)\n` +
      `  kept ${plan.keptRecords} records and ${plan.keptObjects} objects reached by ${projects.map((p) => p.displayPath).join(', ')}${pins.length ? ` and ${pins.length} pin${pins.length === 1 ? '' : 's'} (${pins.map((p) => p.name).join(', ')})` : ''}${history.keptRuns ? `, and the last ${history.keptRuns} run${history.keptRuns === 1 ? '' : 's'} of the history (--keep-runs)` : ''}\n`,
  );
  return 0;
}

export async function verifyCommand(g: GlobalOptions): Promise<number> {
  const { cacheRoot } = await import('../project.js');
  const { CacheStore } = await import('../cache/store.js');
  const store = new CacheStore(cacheRoot(g.workspace ?? process.cwd(), g.cache));
  const t0 = performance.now();
  const r = verifyObjects(store);
  const secs = (performance.now() - t0) / 1000;
  process.stdout.write(`dfwe verify: ${r.objects} objects, ${mib(r.bytes)} re-hashed in ${secs.toFixed(2)}s: ${r.corrupt.length} corrupt${r.resealed ? `, ${r.resealed} resealed` : ''}; ${r.records} records: ${r.damagedRecords.length} damaged\n`);
  for (const d of r.corrupt) process.stdout.write(`  quarantined ${d}: its content no longer matches its name; the nodes that made it will run again\n`);
  for (const k of r.damagedRecords) process.stdout.write(`  record ${k} fails its checksum, shape or manifest (edited or damaged): it is never served, its node runs again, and gc removes it\n`);
  return r.corrupt.length || r.damagedRecords.length ? 1 : 0;
}

export async function pinCommand(name: string | undefined, pipeline: string | undefined, opts: { list?: boolean; remove?: boolean }, g: GlobalOptions): Promise<number> {
  const { cacheRoot } = await import('../project.js');
  const { CacheStore } = await import('../cache/store.js');
  const store = new CacheStore(cacheRoot(g.workspace ?? process.cwd(), g.cache));
  if (opts.list || name === undefined) {
    const { pins, damaged } = readPins(store);
    for (const d of damaged) process.stdout.write(`(not a readable pin: ${d})\n`);
    process.stdout.write(pins.length ? pins.map((p) => `${p.name}  ${p.records.length} results of ${p.pipeline}, pinned ${p.at}`).join('\n') + '\n' : 'no pins\n');
    return 0;
  }
  if (!/^[\w.-]+$/.test(name)) throw new UserError(`a pin name is letters, digits, "_", "." and "-", not "${name}"`);
  if (opts.remove) {
    if (!removePin(store, name)) throw new UserError(`no pin "${name}"`);
    process.stdout.write(`unpinned ${name}\n`);
    return 0;
  }
  const project = await open(pipeline, g);
  // As a run does: a gc must not remove what is being pinned.
  store.claim();
  const leases = new LeaseManager(store.locksDir, `dfwe pin ${name}`);
  const lease = await leases.acquire(CACHE_LEASE, `dfwe pin ${name}`, 'read');
  let records: string[];
  try {
    records = plan(project).decisions.filter((d) => d.state === 'cached' && d.execKey).map((d) => d.execKey!);
    writePin(store, { name, pipeline: project.displayPath, at: new Date().toISOString(), records });
  } finally {
    lease.release();
    leases.close();
  }
  process.stdout.write(`pinned ${name}: ${records.length} cached results of ${project.displayPath}; gc keeps them until \`dfwe pin --remove ${name}\`\n`);
  return 0;
}
