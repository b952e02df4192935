import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { digestBytes, digestFile } from '../util/hash.js';
import { writeFileAtomic } from '../util/fsx.js';

/*
 * Content digests of workspace files, memoised by what changes when a file changes: device,
 * inode, size, mtime and ctime. An entry hashed within RACY_MS of the file's mtime is not trusted
 * (the racy-clean rule, as in git): a write in the same timestamp tick as the hash would
 * otherwise leave mtime unchanged and hide the edit. Such files are re-hashed until they age.
 */

const RACY_MS = 2000;

type Entry = [dev: number, ino: number, size: number, mtimeMs: number, ctimeMs: number, digest: string, hashedAtMs: number];

export class FileDigests {
  private entries: Record<string, Entry> = {};
  private dirty = false;

  constructor(private readonly memoPath?: string) {
    if (memoPath) {
      try {
        this.entries = JSON.parse(readFileSync(memoPath, 'utf8')) as Record<string, Entry>;
      } catch {
        this.entries = {};
      }
    }
  }

  /** Digest of a file, or of a directory's tree (names, exec bits and contents); undefined if missing. */
  digest(absPath: string): string | undefined {
    let st: Stats;
    try {
      st = statSync(absPath); // symlinks are followed: a dep is what the stage reads
    } catch {
      return undefined;
    }
    if (st.isDirectory()) return this.digestDir(absPath);
    return this.digestOne(absPath, st);
  }

  private digestOne(absPath: string, st: Stats): string {
    const e = this.entries[absPath];
    if (
      e &&
      e[0] === st.dev &&
      e[1] === st.ino &&
      e[2] === st.size &&
      e[3] === st.mtimeMs &&
      e[4] === st.ctimeMs &&
      e[6] - st.mtimeMs >= RACY_MS
    ) {
      return e[5];
    }
    const digest = digestFile(absPath);
    this.entries[absPath] = [st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs, digest, Date.now()];
    this.dirty = true;
    return digest;
  }

  private digestDir(absDir: string): string {
    const lines: string[] = [];
    const walk = (dir: string, rel: string): void => {
      for (const name of readdirSync(dir).sort()) {
        const abs = join(dir, name);
        const st = statSync(abs);
        const r = rel ? `${rel}/${name}` : name;
        if (st.isDirectory()) walk(abs, r);
        else lines.push(`${r}\0${st.mode & 0o111 ? 'x' : '-'}\0${this.digestOne(abs, st)}`);
      }
    };
    walk(absDir, '');
    return digestBytes(`dir\0${lines.join('\n')}`);
  }

  save(): void {
    if (this.memoPath && this.dirty) {
      writeFileAtomic(this.memoPath, JSON.stringify(this.entries), { durable: false });
      this.dirty = false;
    }
  }
}

