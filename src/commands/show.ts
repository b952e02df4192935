import { plan } from '../engine/planner.js';
import { nodeOrError } from '../project.js';
import { secondsOf } from '../report/reporter.js';
import { FAILURE_KINDS, isFailureKind } from '../execute/runner.js';
import { open, type GlobalOptions } from './common.js';
import { readAttempt, readRecord, readRunning, type RunningNode } from '../cache/records.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { hasObject, readObject } from '../cache/objects.js';

export async function showCommand(id: string, pipeline: string | undefined, opts: { json?: boolean; log?: boolean }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  const node = nodeOrError(project, id);
  const decision = plan(project).decisions.find((d) => d.id === id)!;
  const attempt = readAttempt(project.store, project.workspace, id);
  const record = decision.record ?? (attempt?.status === 'succeeded' ? readRecord(project.store, attempt.execKey) : undefined);
  const logDigest = decision.record?.log ?? attempt?.log;
  const running = readRunning(project.store, project.workspace, id);
  // A running node's log is the one it is writing; else the last one stored.
  const log = running ? liveLogTail(running) : logDigest && hasObject(project.store, logDigest) ? readObject(project.store, logDigest).toString('utf8') : undefined;
  if (opts.json) {
    process.stdout.write(JSON.stringify({ id, type: node.type, state: running ? 'running' : decision.state, reason: decision.reason, running: running ?? null, record: record ?? null, lastAttempt: attempt ?? null, log: log ?? null }, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [];
  out.push(`${id}  (${node.type === 'cmd' ? 'command' : node.type})`);
  if (running) out.push(`  state:    ${runningLine(running)}`);
  else out.push(`  state:    ${decision.state === 'run' ? `will run: ${decision.reason}` : decision.state}`);
  // A multi-line command (a YAML block) keeps its lines under the first, not at the margin.
  if (node.command) out.push(`  command:  ${node.command.trimEnd().replace(/\n/g, `\n${' '.repeat(12)}`)}`);
  if (record) {
    out.push(`  key:      ${record.execKey}${decision.record ? '' : '  (last run; not the current key)'}`);
    out.push(`  ran:      ${record.startedAt} on ${record.host}${record.gpus ? ` (GPU ${record.gpus.join(',')})` : ''}, ${secondsOf(record.durationMs)}${record.peakRssBytes ? `, peak memory ${(record.peakRssBytes / (1 << 20)).toFixed(0)} MiB` : ''}`);
    out.push('  outputs:');
    for (const [name, o] of Object.entries(record.outputs)) {
      out.push(`    ${name}: ${o.path}  (${o.kind}, ${o.size} bytes${o.files ? `, ${o.files.length} files` : ''}, ${o.digest.slice(0, 12)})`);
    }
    if (record.metrics) {
      out.push('  metrics:');
      for (const [k, v] of Object.entries(record.metrics)) out.push(`    ${k}: ${v}`);
    }
  } else out.push('  no cached result yet');
  if (attempt && attempt.status === 'failed') out.push(`  last attempt failed at ${attempt.at}${isFailureKind(attempt.kind) ? ` (${attempt.kind}: ${FAILURE_KINDS[attempt.kind]})` : ''}: ${attempt.error}`);
  if (log !== undefined && log.trim() !== '') {
    const lines = log.trimEnd().split('\n');
    const shown = opts.log ? lines : lines.slice(-20);
    out.push(`  log${running ? ' so far' : ''}${opts.log || lines.length <= 20 ? '' : ` (last 20 of ${lines.length} lines; --log for all)`}:`);
    for (const l of shown) out.push(`    | ${l}`);
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

export function runningLine(r: RunningNode): string {
  const where = [`pid ${r.pid} on ${r.host}`, `slot ${r.slot + 1}`, ...(r.gpus ? [`GPU ${r.gpus.join(',')}`] : [])];
  return `running since ${r.since} (${where.join(', ')})`;
}

/** The end of a running node's log as it stands (its last MiB): a live log can be any size. */
function liveLogTail(r: RunningNode): string | undefined {
  let fd: number;
  try {
    fd = openSync(r.log, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const n = Math.min(size, 1 << 20);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, size - n);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}
