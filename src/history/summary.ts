import { paramRows } from './diff.js';
import type { Run } from './runs.js';

/** A param or metric value as a table cell. */
export function showValue(v: unknown): string {
  return v === undefined ? '—' : typeof v === 'number' ? String(Number.isInteger(v) ? v : +v.toFixed(4)) : typeof v === 'string' ? v : JSON.stringify(v);
}

/** What a run was asked differently from the run of the same pipeline before it. */
export function changedSince(prev: Run | undefined, run: Run): string {
  if (!prev) return '(first run)';
  const parts: string[] = [];
  for (const p of paramRows(prev, run).filter((r) => r.changed)) parts.push(`${p.name}: ${showValue(p.a)} → ${showValue(p.b)}`);
  if (prev.start.pipelineDigest !== run.start.pipelineDigest) parts.push('pipeline edited');
  if (JSON.stringify(prev.start.only) !== JSON.stringify(run.start.only)) parts.push('--only changed');
  if (prev.start.git?.commit !== run.start.git?.commit) parts.push('new commit');
  return parts.length ? parts.join(', ') : '(same)';
}

