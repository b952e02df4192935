import type { Decision } from '../engine/plan.js';
import type { Project } from '../project.js';
import type { CacheStore } from '../cache/store.js';
import { keepWithStats, restampSnapshot, type PipelineHeader } from '../engine/snapshot.js';
import type { Stats } from 'node:fs';
import { open, saveSnapshotIfAllCached, snapshotOf, type GlobalOptions } from './common.js';
import { expansionSummary } from './expand.js';
import { maxOf } from '../util/arrays.js';

export async function statusCommand(pipeline: string | undefined, opts: { json?: boolean; all?: boolean; remote?: string }, g: GlobalOptions, targets: string[] = []): Promise<number> {
  // Nothing changed since everything was found cached: said from the snapshot alone. Only
  // sources changed: the nodes they reach are planned again, the rest is the snapshot's. With
  // targets, their part of the pipeline is planned.
  const found = targets.length === 0 ? await snapshotOf(pipeline, g) : undefined;
  if (found?.check) {
    const { snap } = found.check;
    const { decisionsFromSnapshot } = await import('../engine/snapshot-plan.js');
    const settled = new Map<number, Stats>();
    const decisions = decisionsFromSnapshot(found.check, found.loc, undefined, { settled });
    if (decisions) {
      // Sources touched, not changed: their new stats vouch for them from now on (not hashed again).
      keepWithStats(found.loc, snap, settled);
      const url = opts.remote ?? process.env.DFWE_REMOTE ?? snap.remote;
      if (url) await markRemote(found.loc.store, decisions, url);
      // Decisions come in the snapshot's order: the i-th is node i.
      printStatus(snap.header, decisions, (_id, i) => snap.stages[snap.stageOf[i]!]!, opts.json ?? false, opts.all ?? false);
      return 0;
    }
  }
  const { selectTargets } = await import('../engine/targets.js');
  const project = selectTargets(await open(pipeline, g), targets);
  const [{ plan }, { checkUndeclared }] = await Promise.all([import('../engine/planner.js'), import('../engine/undeclared.js')]);
  checkUndeclared(project);
  // Only a snapshot written before an edit is left to ask: one for this pipeline was checked above.
  const { decisions, prior } = plan(project, { snapshot: found && found.snap.expansionKey !== found.loc.expansionKey ? found.snap : undefined });
  // Found as the snapshot written before the edit had it, every node: its witnesses still hold.
  if (!(prior && decisions.every((d) => d.prior) && restampSnapshot(project, prior))) await saveSnapshotIfAllCached(project, decisions);
  project.saveState();
  const url = opts.remote ?? process.env.DFWE_REMOTE ?? project.remote;
  if (url) await markRemote(project.store, decisions, url);
  printStatus(headerOf(project), decisions, stageOf(project), opts.json ?? false, opts.all ?? false);
  return 0;
}

/** The nodes that would run whose result the shared cache holds: said so (a run downloads them). */
async function markRemote(store: CacheStore, decisions: Decision[], url: string): Promise<void> {
  const [{ openRemote, warnUser: warn }, { RemoteFailure }] = await Promise.all([import('../cache/remote-session.js'), import('../cache/s3-remote.js')]);
  const remote = await openRemote(store, { remote: url }, warn);
  if (!remote) return;
  try {
    const held = new Set<string>();
    for await (const key of remote.records()) held.add(key);
    for (const d of decisions) {
      if (d.state === 'run' && d.execKey !== undefined && held.has(d.execKey)) d.reason = `cached remotely (a run downloads it): ${remote.remote.url}`;
    }
  } catch (err) {
    if (!(err instanceof RemoteFailure)) throw err;
    warn(`the shared cache ${remote.remote.url}: ${err.message}; said without it`);
  } finally {
    remote.remote.close();
  }
}

export function headerOf(project: Project): PipelineHeader {
  return { name: project.name, displayPath: project.displayPath, members: project.members, instances: project.instances, nodes: project.nodes.length };
}

export function stageOf(project: Project): (id: string, i: number) => string {
  return (id) => project.graph.byId.get(id)!.stage;
}

/** Beyond this many nodes, status prints a line per stage unless --all asks for every node. */
const PER_NODE_LINES = 100;

/** `stage` names the stage of decision i, node `id`. */
export function printStatus(header: PipelineHeader, decisions: Decision[], stage: (id: string, i: number) => string, json: boolean, all = false): void {
  const counts = { cached: 0, run: 0, blocked: 0 };
  for (const d of decisions) counts[d.state]++;
  if (json) {
    process.stdout.write(JSON.stringify({
      pipeline: header.displayPath,
      name: header.name,
      counts,
      sweep: { members: header.members, instances: header.instances, nodes: header.nodes },
      nodes: decisions.map((d) => ({ id: d.id, state: d.state, reason: d.reason, planKey: d.planKey, execKey: d.execKey ?? null, restore: d.restore ?? false, changes: d.changes ?? [] })),
    }, null, 2) + '\n');
    return;
  }
  // A pipeline without a `name` is called by its file: said once.
  const title = header.name === header.displayPath ? header.displayPath : `${header.name} (${header.displayPath})`;
  const lines = [`${title}: ${decisions.length} nodes: ${counts.cached} cached, ${counts.run} will run${counts.blocked ? `, ${counts.blocked} blocked` : ''}`];
  if (header.members > 1) lines.push(`  sweep: ${expansionSummary(header)}`);
  if (all || decisions.length <= PER_NODE_LINES) {
    const width = Math.min(40, maxOf(decisions.map((d) => d.id.length)));
    for (const d of decisions) {
      const state = d.state === 'run' ? 'will run' : d.state;
      lines.push(`  ${state.padEnd(9)} ${d.id.padEnd(width)}  ${d.state === 'cached' && !d.restore ? '' : d.reason}`.trimEnd());
    }
  } else lines.push(...stageSummary(decisions, stage), `  (${decisions.length} nodes: a line per stage; --all for every node)`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** A line per stage: its nodes by state, and the first node that will run with its reason. */
function stageSummary(decisions: Decision[], stageOf: (id: string, i: number) => string): string[] {
  const byStage = new Map<string, { nodes: number; cached: number; run: Decision[] }>();
  for (let i = 0; i < decisions.length; i++) {
    const d = decisions[i]!;
    const stage = stageOf(d.id, i);
    const row = byStage.get(stage) ?? byStage.set(stage, { nodes: 0, cached: 0, run: [] }).get(stage)!;
    row.nodes++;
    if (d.state === 'cached' && !d.restore) row.cached++;
    else row.run.push(d);
  }
  const width = Math.max(5, ...[...byStage.keys()].map((s) => s.length));
  const out = [`  ${'stage'.padEnd(width)}  ${'nodes'.padStart(7)}  ${'cached'.padStart(7)}  ${'to do'.padStart(7)}`];
  for (const [stage, r] of byStage) {
    const first = r.run[0];
    const sample = first ? `  ${first.id}: ${first.reason}${r.run.length > 1 ? ` (and ${r.run.length - 1} more)` : ''}` : '';
    out.push(`  ${stage.padEnd(width)}  ${String(r.nodes).padStart(7)}  ${String(r.cached).padStart(7)}  ${String(r.run.length).padStart(7)}${sample}`);
  }
  return out;
}
