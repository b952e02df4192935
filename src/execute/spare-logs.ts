import { lstatSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { unlinkIfAny } from '../util/fsx.js';

/*
 * Stage logs are files in the run's staging directory, one per node. Most stages of a big DAG
 * print nothing; a log made and removed for each of them was a file created and freed per node,
 * and the run's end removed every one left. An empty log is renamed aside instead, and the next
 * node's log is that file renamed again. A log with output has become an object (an inode kept):
 * its name is only unlinked.
 */
export class SpareLogs {
  private readonly spare: string[] = [];
  private made = 0;

  constructor(private readonly dir: string) {}

  /** Before a node's stage starts: its log at `path` is a spare empty one, where there is one. */
  take(path: string): void {
    const s = this.spare.pop();
    if (s === undefined) return;
    try {
      renameSync(s, path);
    } catch {
      // gone (the staging directory cleared by hand): the stage's log is made where it starts
    }
  }

  /** After it: an empty log (only its own name) is kept for the next node, any other name removed. */
  give(path: string): void {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined) return;
    if (st.isFile() && st.size === 0 && st.nlink === 1) {
      const s = join(this.dir, `spare-${this.made++}.log`);
      try {
        renameSync(path, s);
        this.spare.push(s);
        return;
      } catch {
        // removed as before
      }
    }
    // Anything else a stage may have left at its log's path is removed whole.
    if (st.isFile() || st.isSymbolicLink()) unlinkIfAny(path);
    else rmSync(path, { recursive: true, force: true });
  }
}
