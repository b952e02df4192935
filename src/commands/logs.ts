import { closeSync, openSync, readSync } from 'node:fs';
import { readAttempt, readRecord, readRunning } from '../cache/records.js';
import { hasObject, readObject } from '../cache/objects.js';
import { nodeOrError, type Project } from '../project.js';
import { open, type GlobalOptions } from './common.js';
import { runningLine } from './show.js';

/*
 * `dfwe logs NODE [-f]`: a node's log. A running node's is the file its stage is writing now
 * (found through its running marker); `-f` follows it until the stage ends, then prints what
 * the stored log holds past what was read. A node not running prints its last stored log.
 */

const POLL_MS = 200;

export async function logsCommand(id: string, pipeline: string | undefined, opts: { follow?: boolean }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  nodeOrError(project, id);
  const running = readRunning(project.store, project.workspace, id);
  if (!running) {
    const log = storedLog(project, id);
    if (log === undefined) process.stderr.write(`dfwe: ${id} is not running and has no stored log\n`);
    else process.stdout.write(log);
    return 0;
  }
  process.stderr.write(`dfwe: ${id}: ${runningLine(running)}\n`);
  let offset = 0;
  const drain = (): void => {
    let fd: number;
    try {
      fd = openSync(running.log, 'r');
    } catch {
      return; // ended: its log is in the cache now
    }
    try {
      const buf = Buffer.alloc(1 << 16);
      for (let n = readSync(fd, buf, 0, buf.length, offset); n > 0; n = readSync(fd, buf, 0, buf.length, offset)) {
        process.stdout.write(buf.subarray(0, n));
        offset += n;
      }
    } finally {
      closeSync(fd);
    }
  };
  drain();
  if (!opts.follow) return 0;
  while (readRunning(project.store, project.workspace, id)) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    drain();
  }
  drain();
  // What the stage wrote after the last read is in the stored log, which is the whole file.
  const final = storedLog(project, id);
  if (final !== undefined && Buffer.byteLength(final) > offset) process.stdout.write(Buffer.from(final).subarray(offset));
  const attempt = readAttempt(project.store, project.workspace, id);
  process.stderr.write(`dfwe: ${id} ${attempt ? (attempt.status === 'succeeded' ? 'finished' : `failed: ${attempt.error ?? ''}`) : 'stopped'}\n`);
  return 0;
}

/** The log of the node's last attempt in this workspace, if it was stored. */
function storedLog(project: Project, id: string): string | undefined {
  const attempt = readAttempt(project.store, project.workspace, id);
  const digest = attempt?.log ?? (attempt?.status === 'succeeded' ? readRecord(project.store, attempt.execKey)?.log : undefined);
  return digest && hasObject(project.store, digest) ? readObject(project.store, digest).toString('utf8') : undefined;
}
