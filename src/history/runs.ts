import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { localHost } from '../cache/records.js';
import type { CacheStore } from '../cache/store.js';
import { UserError } from '../diagnostics.js';
import { processAlive, processStart } from '../util/process.js';
import { nestedWithin } from '../util/depth.js';
import { HISTORY_FORMAT, runsDir, type EndLine, type NodeLine, type StartLine } from './run-log.js';
import { isFailureKind } from '../execute/runner.js';

/*
 * The run history read back (run-log.ts writes it). Files are anyone's to edit or damage: a line
 * that does not parse (the last one of a killed run, say) is skipped, and a file without a start
 * line is reported as unreadable, never a crash.
 */

export type RunStatus = EndLine['status'] | 'running' | 'killed' | 'unfinished';

export interface Run {
  id: string;
  start: StartLine;
  nodes: NodeLine[];
  end?: EndLine;
  status: RunStatus;
  /** Lines that could not be read (a killed run's last, cut short). */
  skippedLines: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const optional = (v: unknown, ok: (v: unknown) => boolean): boolean => v === undefined || ok(v);
/** A whole count, as the history writes them (not 1e300, not 1.5, not "3"). */
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isScore = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
/** More job slots than any run has: a lane past it would make the report draw that many rows. */
const MAX_LANE = 4096;
/** How deep params may nest before a history line is taken as damaged (the commands walk them). */
const MAX_DEPTH = 64;

const shallow = (v: unknown): boolean => nestedWithin(v, MAX_DEPTH);

const isGit = (g: unknown): boolean => isObject(g) && isString(g.commit) && typeof g.dirty === 'boolean';
const isOnly = (o: unknown): boolean => isObject(o) && Object.values(o).every((v) => Array.isArray(v) && v.every(isString));
const isPair = (p: unknown): boolean =>
  isObject(p) && isString(p.task) && isString(p.method) && optional(p.baseline, isString) && isObject(p.vars) && shallow(p.vars) &&
  optional(p.methodScore, isScore) && optional(p.baselineScore, isScore) && optional(p.delta, isScore);

/*
 * Every field a command reads is checked for its type here, once: a line of valid JSON with a
 * wrong type (`averageDelta: "x"`, `git.commit: 5`, params nested 100,000 deep, `lane: 1e9`) is a
 * damaged line, skipped like one cut short, never a crash or a page of a billion rows.
 */
function isStart(l: Record<string, unknown>): l is StartLine & Record<string, unknown> {
  return l.t === 'start' && l.format === HISTORY_FORMAT && isString(l.id) && isString(l.startedAt) && isString(l.pipeline) && isString(l.workspace) &&
    (l.command === 'run' || l.command === 'watch') && isString(l.name) && isString(l.pipelineDigest) && isString(l.variantKey) && isString(l.executor) && isCount(l.jobs) &&
    isObject(l.params) && shallow(l.params) && isObject(l.overrides) && shallow(l.overrides) && isOnly(l.only) && isCount(l.pid) && optional(l.pidStart, isString) &&
    isString(l.host) && isCount(l.nodes) && optional(l.git, isGit) && optional(l.sourcesDigest, isString) &&
    optional(l.sources, (v) => isObject(v) && Object.values(v).every(isString));
}

function isNode(l: Record<string, unknown>): l is NodeLine & Record<string, unknown> {
  return l.t === 'node' && isString(l.id) && isString(l.stage) && isMs(l.start) && isMs(l.ms) && ['ran', 'restored', 'failed'].includes(l.state as string) &&
    optional(l.lane, (v) => isCount(v) && v < MAX_LANE) && optional(l.host, isString) && optional(l.gpus, (v) => Array.isArray(v) && v.length < MAX_LANE && v.every(isString)) && optional(l.rss, isCount) && optional(l.kind, isFailureKind) && optional(l.error, isString);
}

function isEnd(l: Record<string, unknown>): l is EndLine & Record<string, unknown> {
  const r = l.report;
  const reportOk = r === undefined || (isObject(r) && isString(r.baseline) && isString(r.method) && Array.isArray(r.pairs) && r.pairs.every(isPair) && optional(r.averageDelta, isScore));
  return l.t === 'end' && isString(l.endedAt) && ['succeeded', 'failed', 'interrupted'].includes(l.status as string) && isCount(l.ran) && isCount(l.cached) && isCount(l.failed) &&
    isCount(l.restored) && isCount(l.skipped) && optional(l.served, (s) => isString(s) && /^[0-9a-f]{32}$/.test(s)) && reportOk;
}

export function parseRun(text: string): Run | undefined {
  let start: StartLine | undefined;
  let end: EndLine | undefined;
  const nodes: NodeLine[] = [];
  let skippedLines = 0;
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    let l: unknown;
    try {
      l = JSON.parse(raw);
    } catch {
      skippedLines++;
      continue;
    }
    if (!isObject(l)) skippedLines++;
    else if (!start) {
      if (isStart(l)) start = l;
      else skippedLines++;
    } else if (isNode(l)) nodes.push(l);
    else if (isEnd(l)) end = l;
    else skippedLines++;
  }
  if (!start) return undefined;
  return { id: start.id, start, nodes, end, status: end?.status ?? liveness(start), skippedLines };
}

/** A run without its end line: still going, or gone without one (killed, a crash, power lost). */
function liveness(start: StartLine): RunStatus {
  if (start.host !== localHost()) return 'unfinished';
  const alive = processAlive(start.pid) && (start.pidStart === undefined || processStart(start.pid) === start.pidStart);
  return alive ? 'running' : 'killed';
}

/** What a run did; a run without its end line (killed) counts the nodes it recorded, its cached ones unknown. */
export function countsOf(run: Run): { ran: number; cached?: number; failed: number } {
  if (run.end) return { ran: run.end.ran, cached: run.end.cached, failed: run.end.failed };
  return { ran: run.nodes.filter((n) => n.state === 'ran').length, failed: run.nodes.filter((n) => n.state === 'failed').length };
}

/** Every run in the cache, oldest first, and the history files that could not be read. */
export function listRuns(store: CacheStore): { runs: Run[]; unreadable: string[] } {
  let names: string[];
  try {
    names = readdirSync(runsDir(store)).filter((n) => n.endsWith('.jsonl')).sort();
  } catch {
    return { runs: [], unreadable: [] };
  }
  const runs: Run[] = [];
  const unreadable: string[] = [];
  for (const n of names) {
    const path = join(runsDir(store), n);
    let run: Run | undefined;
    try {
      run = parseRun(readFileSync(path, 'utf8'));
    } catch {
      run = undefined;
    }
    if (run && `${run.id}.jsonl` === n) runs.push(run);
    else unreadable.push(path);
  }
  // Ids name the second a run started; runs within one second are told apart by the milliseconds.
  runs.sort((a, b) => (a.start.startedAt < b.start.startedAt ? -1 : a.start.startedAt > b.start.startedAt ? 1 : a.id < b.id ? -1 : 1));
  return { runs, unreadable };
}

/**
 * A run named on the command line: its id or a unique prefix of it (any run of the cache), or
 * `last` (the latest run of `workspace`) or `last-N` (N before it).
 */
export function resolveRun(runs: Run[], ref: string, workspace: string): Run {
  const back = /^last(?:-(\d+))?$/.exec(ref);
  if (back) {
    const here = runs.filter((r) => r.start.workspace === workspace);
    const run = here[here.length - 1 - Number(back[1] ?? 0)];
    if (!run) throw new UserError(`no run "${ref}": ${here.length === 0 ? 'no run is recorded yet (dfwe run records one)' : `${here.length} run${here.length === 1 ? ' is' : 's are'} recorded`}`);
    return run;
  }
  const found = runs.filter((r) => r.id.startsWith(ref));
  if (found.length === 1) return found[0]!;
  if (found.length === 0) throw new UserError(`no run "${ref}" in this cache's history; \`dfwe runs\` lists them`);
  throw new UserError(`"${ref}" names ${found.length} runs (${found.slice(0, 3).map((r) => r.id).join(', ')}${found.length > 3 ? ', …' : ''}): give more of the id`);
}
