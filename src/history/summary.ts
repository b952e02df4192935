import { paramRows } from './diff.js';
import type { Run } from './runs.js';

/** A param or metric value as a table cell. */
export function showValue(v: unknown): string {
  return v === undefined ? '—' : typeof v === 'number' ? String(Number.isInteger(v) ? v : +v.toFixed(4)) : typeof v === 'string' ? v : JSON.stringify(v);
}

/** The source files that differ between two runs: named when both listed them, else said as such. */
function sourcesEdited(prev: Run, run: Run): string | undefined {
  const a = prev.start;
  const b = run.start;
  if (a.sourcesDigest === undefined || b.sourcesDigest === undefined || a.sourcesDigest === b.sourcesDigest) return undefined;
  if (!a.sources || !b.sources) return 'sources edited';
  const names = [...new Set([...Object.keys(a.sources), ...Object.keys(b.sources)])].filter((f) => a.sources![f] !== b.sources![f]).sort();
  if (names.length === 0) return undefined;
  const shown = names.slice(0, 3).join(', ');
  return `${shown}${names.length > 3 ? ` and ${names.length - 3} more` : ''} edited`;
}

/**
 * What a run was asked differently from the run of the same pipeline before it. `sourcesBefore`:
 * the latest earlier run that recorded its sources (a no-op told from the snapshot records none).
 */
export function changedSince(prev: Run | undefined, run: Run, sourcesBefore: Run | undefined = prev): string {
  if (!prev) return '(first run)';
  const parts: string[] = [];
  for (const p of paramRows(prev, run).filter((r) => r.changed)) parts.push(`${p.name}: ${showValue(p.a)} → ${showValue(p.b)}`);
  if (prev.start.pipelineDigest !== run.start.pipelineDigest) parts.push('pipeline edited');
  if (JSON.stringify(prev.start.only) !== JSON.stringify(run.start.only)) parts.push('--only changed');
  if (prev.start.git?.commit !== run.start.git?.commit) parts.push('new commit');
  const edited = sourcesBefore && sourcesEdited(sourcesBefore, run);
  if (edited) parts.push(edited);
  return parts.length ? parts.join(', ') : '(same)';
}

