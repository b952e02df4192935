import { CACHE_LEASE, LeaseManager, type Lease } from '../cache/lease.js';
import { leftoverStopper } from '../execute/executors/index.js';
import type { CacheStore } from '../cache/store.js';
import { readAttempt } from '../cache/records.js';
import { applyGc, planGc, readPins, removePin, verifyObjects, writePin } from '../cache/maintenance.js';
import { UserError } from '../diagnostics.js';
import { plan } from '../engine/planner.js';
import type { Project } from '../project.js';
import { open, type GlobalOptions } from './common.js';
import { planHistoryGc } from '../history/gc.js';
import { listSome } from '../engine/reasons.js';

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Results a pipeline reaches now: its cached nodes' records, and each node's last run; and the nodes not cached here. */
function reached(project: Project): { records: Set<string>; objects: Set<string>; uncached: string[] } {
  const records = new Set<string>();
  const objects = new Set<string>();
  const uncached: string[] = [];
  for (const d of plan(project).decisions) {
    if (d.state === 'cached' && d.execKey) records.add(d.execKey);
    else uncached.push(d.id);
  }
  for (const n of project.graph.order) {
    const a = readAttempt(project.store, project.workspace, n.id);
    if (a?.status === 'succeeded') records.add(a.execKey);
    if (a?.log) objects.add(a.log);
  }
  return { records, objects, uncached };
}

/**
 * gc holds the cache's writer lease while it plans and removes; every run holds a reader lease
 * for its whole length. So gc never removes what a run is committing, and a run that starts
 * during gc waits for it.
 */
function lockForGc(store: CacheStore): { lease: Lease; leases: LeaseManager } {
  store.claim();
  const leases = new LeaseManager(store.locksDir, 'dfwe gc', leftoverStopper());
  const r = leases.tryWrite(CACHE_LEASE, 'dfwe gc');
  if ('release' in r) return { lease: r, leases };
  leases.close();
  throw new UserError(`${r.what === 'dfwe gc' ? 'another dfwe gc' : `a run is in progress (${r.what})`} (pid ${r.pid} on ${r.host}, since ${r.since}): gc would race it; try again when it ends`);
}

export async function gcCommand(pipelines: string[], opts: { dryRun?: boolean; keepRuns?: string; remote?: boolean | string }, g: GlobalOptions): Promise<number> {
  const keepRuns = opts.keepRuns === undefined ? KEEP_RUNS : Number(opts.keepRuns);
  if (!Number.isInteger(keepRuns) || keepRuns < 0) throw new UserError(`--keep-runs takes a whole number of runs (0: none), not "${opts.keepRuns}"`);
  if (g.only?.length) throw new UserError('gc considers whole pipelines: --only would make the rest of a sweep look unreachable');
  const projects = await Promise.all((pipelines.length ? pipelines : [undefined]).map((p) => open(p, g)));
  const store = projects[0]!.store;
  if (projects.some((p) => p.store.root !== store.root)) throw new UserError('gc: the pipelines use different caches');
  if (opts.remote !== undefined) return collectRemote(projects, store, opts, keepRuns);
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

/** What gc keeps: the records and objects the pipelines, the pins and the last runs reach. */
function live(projects: Project[], store: CacheStore, keepRuns: number): { liveRecords: Set<string>; liveObjects: Set<string>; uncached: string[]; pins: ReturnType<typeof readPins>['pins']; history: ReturnType<typeof planHistoryGc> } {
  const liveRecords = new Set<string>();
  const liveObjects = new Set<string>();
  const uncached: string[] = [];
  for (const p of projects) {
    const r = reached(p);
    r.records.forEach((k) => liveRecords.add(k));
    r.objects.forEach((d) => liveObjects.add(d));
    uncached.push(...r.uncached);
  }
  const { pins, damaged } = readPins(store);
  if (damaged.length) throw new UserError(`gc: ${damaged.join(', ')} ${damaged.length === 1 ? 'is not a readable pin' : 'are not readable pins'}; gc would drop what ${damaged.length === 1 ? 'it keeps' : 'they keep'}. Fix or remove ${damaged.length === 1 ? 'it' : 'them'} first`);
  for (const pin of pins) pin.records.forEach((k) => liveRecords.add(k));
  const history = planHistoryGc(store, keepRuns);
  history.records.forEach((k) => liveRecords.add(k));
  return { liveRecords, liveObjects, uncached, pins, history };
}

function collect(projects: Project[], store: CacheStore, opts: { dryRun?: boolean }, keepRuns: number): number {
  const { liveRecords, liveObjects, pins, history } = live(projects, store, keepRuns);
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

/**
 * `gc --remote`: the shared cache, by the same rule, from a machine where every node of the given
 * pipelines is cached (elsewhere the remote's results for the others could not be told apart
 * from dead ones). The local cache is left as it is.
 */
async function collectRemote(projects: Project[], store: CacheStore, opts: { dryRun?: boolean; remote?: boolean | string }, keepRuns: number): Promise<number> {
  const { liveRecords, uncached } = live(projects, store, keepRuns);
  if (uncached.length > 0) throw new UserError({ message: `gc --remote: ${uncached.length} node${uncached.length === 1 ? ' is' : 's are'} not cached here (${listSome(uncached)}), so gc cannot tell which of the remote's results ${uncached.length === 1 ? 'it' : 'they'} would use`, hint: 'run or pull the pipelines first (dfwe pull), then gc --remote' });
  const [{ requireRemote, warnUser: warn }, { planRemoteGc, applyRemoteGc }, { RemoteFailure }] = await Promise.all([import('../cache/remote-session.js'), import('../cache/remote-gc.js'), import('../cache/s3-remote.js')]);
  // Records gc finds unusable are said once, as what they are: removed.
  const remote = await requireRemote(store, { remote: typeof opts.remote === 'string' ? opts.remote : undefined }, () => {}, projects[0]!.remote);
  try {
    if (!remote.checks) throw new UserError({ message: 'gc --remote needs the signing key: without it no record on the remote can be checked, so each would look unusable and be removed', hint: 'set DFWE_REMOTE_KEY (or DFWE_REMOTE_UNSIGNED=1 for a remote of unsigned records)' });
    if (remote.readOnly && !opts.dryRun) throw new UserError({ message: `gc --remote: the remote ${remote.remote.url} is read-only here`, hint: 'run it where dfwe may write the remote, or with -n to see what it would remove' });
    const plan = await planRemoteGc(remote, liveRecords);
    const abandoned = opts.dryRun ? 0 : await applyRemoteGc(remote, plan);
    process.stdout.write(
      `dfwe gc --remote ${remote.remote.url}: ${opts.dryRun ? 'would remove' : 'removed'} ${plan.records.length} records and ${plan.objects.length} objects: ${mib(plan.bytes)} (${plan.bytes} bytes)${abandoned ? `, and aborted ${abandoned} unfinished upload${abandoned === 1 ? '' : 's'}` : ''}\n` +
        `  kept ${plan.keptRecords} records and ${plan.keptObjects} objects reached by ${projects.map((p) => p.displayPath).join(', ')}\n`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof RemoteFailure)) throw err;
    warn(`the remote ${remote.remote.url}: ${err.message}`);
    return 1;
  } finally {
    remote.remote.close();
  }
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
  const leases = new LeaseManager(store.locksDir, `dfwe pin ${name}`, leftoverStopper());
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
