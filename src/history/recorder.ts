import type { LeaseHolder } from '../cache/lease.js';
import { readRecord, type NodeRecord } from '../cache/records.js';
import type { CacheStore } from '../cache/store.js';
import { outputDigests } from '../node-keys.js';
import type { ExecKey } from '../util/key-types.js';
import type { RunSummary } from '../execute/scheduler.js';
import type { Project } from '../project.js';
import { averageDelta, pairsFrom, taskRows } from '../comparison.js';
import type { Reporter } from '../execute/scheduler.js';
import type { Finished } from '../execute/runner.js';
import type { EndLine, NodeLine, RunLog } from './run-log.js';
import { servedSetText, storeServedText, type StoredServedSet } from './served-set.js';

/*
 * A run's history as it happens: a reporter that passes every event on to the one the user sees
 * and writes a line to the run's history file (run-log.ts) for each node that executed or was
 * restored. Which job slot a node ran in is the lowest one free when it started, as a timeline
 * draws it.
 */

export class HistoryRecorder implements Reporter {
  private readonly t0 = performance.now();
  private readonly running = new Map<string, { start: number; lane: number; ended?: number }>();
  private readonly lanes: boolean[] = [];

  constructor(
    private readonly inner: Reporter,
    private readonly log: RunLog,
    private readonly project: Project,
    private readonly carried?: CarriedServed,
  ) {}

  begin(expected: string[]): Promise<void> | void {
    return this.inner.begin(expected);
  }

  started(id: string): void {
    let lane = this.lanes.indexOf(false);
    if (lane < 0) lane = this.lanes.push(true) - 1;
    else this.lanes[lane] = true;
    this.running.set(id, { start: performance.now() - this.t0, lane });
    this.inner.started(id);
  }

  processEnded(id: string): void {
    const slot = this.running.get(id);
    if (!slot) return;
    slot.ended = performance.now() - this.t0;
    this.lanes[slot.lane] = false;
    this.inner.processEnded?.(id);
  }

  waiting(id: string, holder: LeaseHolder): void {
    this.inner.waiting(id, holder);
  }

  progress(id: string, line: string): void {
    this.inner.progress(id, line);
  }

  finished(id: string, o: Finished): void {
    const now = performance.now() - this.t0;
    const slot = this.running.get(id);
    if (slot) {
      this.running.delete(id);
      if (slot.ended === undefined) this.lanes[slot.lane] = false;
    }
    const stage = this.project.graph.byId.get(id)!.stage;
    const start = slot?.start ?? now;
    let line: NodeLine | undefined;
    if (o.status === 'ran') {
      // The bar a timeline draws: its processes' run, in its job slot (the commit after it is not the slot's).
      const ms = slot?.ended !== undefined ? slot.ended - slot.start : o.record.durationMs;
      line = { t: 'node', id, stage, state: 'ran', start, ms, lane: slot?.lane, host: o.record.host, gpus: o.record.gpus, rss: o.record.peakRssBytes };
    } else if (o.status === 'cached' && o.restored) {
      line = { t: 'node', id, stage, state: 'restored', start, ms: 0 };
    } else if (o.status === 'failed') {
      line = { t: 'node', id, stage, state: 'failed', start, ms: now - start, lane: slot?.lane, gpus: o.gpus, rss: o.peakRssBytes, kind: o.kind, error: o.error };
    }
    if (line) this.log.append(line);
    this.inner.finished(id, o);
  }

  end(summary: RunSummary, seconds: number): Promise<void> | void {
    return this.inner.end(summary, seconds);
  }

  /** Writes the end line (the outcome, the served set, the report's pairs); the served set's digest. */
  finish(summary: RunSummary): string | undefined {
    const end = endOf(this.project, summary, this.carried);
    this.log.end(end);
    return end.served;
  }
}

/**
 * A node served without its record read, as a served set from before output digests were kept
 * had it: its record's, read once here, so that the next run keys from the set alone.
 */
function outputsOf(store: CacheStore, execKey: ExecKey): Record<string, string> | null {
  const record = readRecord(store, execKey);
  return record ? outputDigests(record) : null;
}

function endOf(project: Project, summary: RunSummary, carried: CarriedServed | undefined): Omit<EndLine, 't' | 'endedAt'> {
  const status = summary.interrupted ? 'interrupted' : summary.failed.length > 0 ? 'failed' : 'succeeded';
  const served = summary.served.size > 0 ? storeServedText(project.store, servedText(project, summary.served, carried)) : undefined;
  let report: EndLine['report'];
  if (project.report) {
    const pairs = pairsFrom(project, (id) => summary.served.get(id)?.metrics);
    report = { ...project.report, pairs, averageDelta: averageDelta(taskRows(pairs)) };
  }
  return { status, ran: summary.ran, cached: summary.cached, restored: summary.restored, failed: summary.failed.length, skipped: summary.skipped, served, report };
}

/**
 * The nodes a run served as the served set before it did (a run of part of a pipeline: every node
 * but the `part`'s, by index in pipeline order): their entries are that set's, carried over.
 */
export interface CarriedServed {
  base: StoredServedSet;
  part: readonly number[];
}

/** What serves each node (in pipeline order), as the history keeps it: a served set's text (served-set.ts). */
export function servedText(project: Project, served: ReadonlyMap<string, Pick<NodeRecord, 'execKey' | 'metrics'> & { outputs?: Record<string, string> }>, carried?: CarriedServed): string {
  const order = project.part?.order ?? project.graph.order;
  const entry = (i: number): string | undefined => {
    const n = order[i]!;
    const r = served.get(n.id);
    return r && JSON.stringify([n.id, n.stage, r.execKey, r.metrics ?? null, r.outputs ?? outputsOf(project.store, r.execKey)]);
  };
  const own = carried && new Set(carried.part);
  const lines: string[] = [];
  for (let i = 0; i < order.length; i++) {
    const line = !own || own.has(i) ? entry(i) : carried!.base.line(i);
    if (line !== undefined) lines.push(line);
  }
  return servedSetText(lines);
}
