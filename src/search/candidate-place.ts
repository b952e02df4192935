import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { processAlive, processStart } from '../util/process.js';

/*
 * Where a search writes its candidates: each is written in full, read by the evaluator and
 * removed, so RAM (a tmpfs) saves the disk's writes when it has room. The directory is one dfwe
 * makes for itself (mkdtemp, owner only), marked with the process that owns it, and removed when
 * the search ends; one left by a killed search is removed by the next search on the machine.
 * Nothing else there is touched. DFWE_RAM_SCRATCH=0 keeps candidates in the node's scratch.
 */

const SHM = '/dev/shm';
const PREFIX = 'dfwe-candidates-';
const MARK = '.dfwe-owner';
const TMPFS_MAGIC = 0x01021994;

export interface CandidatePlace {
  dir: string;
  /** "ram (/dev/shm)" or "disk", with why, for the search record and the log. */
  where: string;
  /** Removes a RAM directory (scratch is the node's to remove). */
  release(): void;
}

/** A place for candidates of `bytes` each: RAM when /dev/shm is a tmpfs with room for two and the machine's free memory for four; else `scratch`. */
export function candidatePlace(scratch: string, bytes: number): CandidatePlace {
  const disk = (why: string): CandidatePlace => ({ dir: scratch, where: `disk (${why})`, release: () => undefined });
  if (process.env.DFWE_RAM_SCRATCH === '0') return disk('DFWE_RAM_SCRATCH=0');
  let fs;
  try {
    fs = statfsSync(SHM);
  } catch {
    return disk(`no ${SHM}`);
  }
  if (fs.type !== TMPFS_MAGIC) return disk(`${SHM} is not a tmpfs`);
  const room = fs.bavail * fs.bsize;
  if (room < 2 * bytes || freemem() < 4 * bytes) return disk(`a candidate is ${gib(bytes)}; ${SHM} has ${gib(room)} free and the machine ${gib(freemem())}`);
  sweepStale();
  const dir = mkdtempSync(join(SHM, PREFIX));
  writeFileSync(join(dir, MARK), JSON.stringify({ pid: process.pid, start: processStart(process.pid) ?? null }));
  return { dir, where: `ram (${SHM})`, release: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Removes candidate directories of this user whose owning process is gone (a killed search's). */
function sweepStale(): void {
  let names: string[];
  try {
    names = readdirSync(SHM).filter((n) => n.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(SHM, name);
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.()) continue;
      const owner = JSON.parse(readFileSync(join(dir, MARK), 'utf8')) as { pid?: unknown; start?: unknown };
      if (typeof owner.pid !== 'number') continue;
      const alive = processAlive(owner.pid) && (owner.start === null || processStart(owner.pid) === owner.start);
      if (!alive) rmSync(dir, { recursive: true, force: true });
    } catch {
      // Unmarked or unreadable: not ours to judge.
    }
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}
