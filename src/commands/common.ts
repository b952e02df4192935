import { UserError } from '../diagnostics.js';
import { dict } from '../util/dict.js';
import { locateProject, openProject, runtimeFor, type Project, type ProjectLocation, type ProjectOptions } from '../project.js';
import { relocateMemo } from '../expansion-memo.js';
import type { Decision } from '../engine/plan.js';
import { checkReadSnapshot, keepSnapshot, readSnapshot, writeSnapshot, type Snapshot, type SnapshotCheck } from '../engine/snapshot.js';
import { servedBy, type Served } from '../execute/runner.js';
import { servedText } from '../history/recorder.js';
import { storeServedText } from '../history/served-set.js';
import { readRecord } from '../cache/records.js';
import { registry } from '../../stages/index.js';
import { executors } from '../execute/executors/index.js';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';

export interface GlobalOptions {
  workspace?: string;
  cache?: string;
  only?: string[];
  param?: string[];
  backend?: string;
}

/** `--only VAR=VALUE`, repeatable: the members with any of the values given for each variable. */
export function parseOnly(specs: string[] = []): Record<string, string[]> {
  const out = dict<string[]>();
  for (const s of specs) {
    const m = /^([A-Za-z_]\w*)=(.*)$/.exec(s);
    if (!m) throw new UserError(`--only takes VARIABLE=VALUE (e.g. target=emotion, sources=a+b+c), not "${s}"`);
    const values = (out[m[1]!] ??= []);
    if (!values.includes(m[2]!)) values.push(m[2]!);
  }
  for (const v of Object.values(out)) v.sort();
  return out;
}

/** `--param NAME=VALUE`: the value is read as YAML, so `seed=1` is a number and `tasks=[a, b]` a list. */
export async function parseParams(specs: string[] = []): Promise<Record<string, unknown>> {
  const out = dict<unknown>();
  if (specs.length === 0) return out;
  const { parse: parseYaml } = await import('yaml');
  for (const s of specs) {
    const m = /^([A-Za-z_]\w*)=([\s\S]*)$/.exec(s);
    if (!m) throw new UserError(`--param takes NAME=VALUE (e.g. seed=1, tasks=[emotion, topic]), not "${s}"`);
    try {
      out[m[1]!] = parseYaml(m[2]!);
    } catch (err) {
      throw new UserError(`--param ${m[1]}: the value is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return out;
}

export async function projectOptions(pipeline: string | undefined, g: GlobalOptions): Promise<ProjectOptions> {
  // The CLI is where the stage types are chosen (stages/index.ts): the engine is handed them.
  return { pipeline, workspace: g.workspace ?? process.cwd(), cacheDir: g.cache, only: parseOnly(g.only), params: await parseParams(g.param), backend: g.backend, stageTypes: registry, executors };
}

/**
 * `dfwe run [PIPELINE] [TARGET…]`: the first word is the pipeline when it is a file (or is named
 * *.yaml, *.yml); every other word is a target, a node id or a stage name.
 */
export function pipelineAndTargets(args: readonly string[], g: GlobalOptions): { pipeline?: string; targets: string[] } {
  const isPipeline = (a: string): boolean => /\.ya?ml$/i.test(a) || statSync(resolve(g.workspace ?? process.cwd(), a), { throwIfNoEntry: false })?.isFile() === true;
  const [first, ...rest] = args;
  const pipeline = first !== undefined && isPipeline(first) ? first : undefined;
  const targets = pipeline === undefined ? [...args] : rest;
  const misplaced = targets.find((t) => /\.ya?ml$/i.test(t));
  if (misplaced) throw new UserError(`"${misplaced}" looks like a pipeline file: give the pipeline first, then the targets (dfwe run ${misplaced} ${targets.filter((t) => t !== misplaced).join(' ') || 'STAGE'})`);
  return { pipeline, targets };
}

/** The project a command works on. */
export async function open(pipeline: string | undefined, g: GlobalOptions): Promise<Project> {
  return openProject(await projectOptions(pipeline, g));
}

/**
 * This pipeline variant's snapshot, and what changed since it (see checkReadSnapshot) when it was
 * written for the pipeline as it is now; undefined if there is none to use at all.
 */
export async function snapshotOf(pipeline: string | undefined, g: GlobalOptions): Promise<{ snap: Snapshot; check?: SnapshotCheck; loc: ProjectLocation } | undefined> {
  try {
    const loc = locateProject(await projectOptions(pipeline, g));
    let snap = readSnapshot(loc, (backend) => runtimeFor(g.backend ?? backend));
    if (!snap) return undefined;
    let keep = false;
    // The file changed since: if only in its comments or layout, it is the pipeline the snapshot was written for.
    if (snap.expansionKey !== loc.expansionKey && snap.meaningKey === (await loc.meaning())) {
      snap = { ...snap, expansionKey: loc.expansionKey };
      keep = true;
      await relocateMemo(loc);
    }
    const check = checkReadSnapshot(loc, snap);
    // Directories on the way that changed and still hold (a file made beside the pipeline): kept as they are now.
    if (check?.restated) {
      snap = check.snap;
      keep = true;
    }
    if (keep) keepSnapshot(loc, snap);
    return { snap, check, loc };
  } catch (err) {
    if (err instanceof UserError) return undefined;
    throw err;
  }
}

/**
 * After a full plan: a snapshot for the next no-op, when every node is cached and in place, with
 * its served set (so that a run planned from it records every node's metrics without reading records).
 */
export async function saveSnapshotIfAllCached(project: Project, decisions: readonly Decision[]): Promise<void> {
  if (project.targets) return;
  // Told first, from the decisions alone: an edit that makes half the nodes run reads no record.
  if (!decisions.every((d) => d.state === 'cached' && !d.restore)) return;
  const served = new Map<string, Served>();
  for (const d of decisions) {
    // Decided from the prior snapshot: its record was not needed to plan, and is read now.
    const record = d.record ?? (d.execKey ? readRecord(project.store, d.execKey) : undefined);
    if (!record) return;
    served.set(d.id, servedBy(record));
  }
  await writeSnapshot(project, served, storeServedText(project.store, servedText(project, served)));
}
