import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAll } from '../util/fsx.js';
import type { Weights } from './space.js';

/*
 * A search's scored candidates, made durable one by one as they are scored, in the node's resume
 * directory (kept per node key: the models, the method and its params, the evaluator and its
 * data are all in that key). A rerun after a killed or failed search asks the journal before
 * the scorer: the optimizer, seeded as before, walks the same path, and each candidate already
 * scored costs nothing. The result is the uninterrupted run's.
 */

export interface Scored {
  score: number;
  loss: number;
}

export class ScoreJournal {
  private readonly known = new Map<string, Scored>();
  private readonly path: string;
  private fd: number | undefined;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'scores.jsonl');
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      // a first attempt
    }
    for (const line of text.split('\n')) {
      // A line cut short by a kill, or not ours: not a score.
      try {
        const e = JSON.parse(line) as { w?: unknown; score?: unknown; loss?: unknown };
        if (Array.isArray(e.w) && typeof e.score === 'number' && typeof e.loss === 'number') this.known.set(JSON.stringify(e.w), { score: e.score, loss: e.loss });
      } catch {
        continue;
      }
    }
    this.fd = openSync(this.path, 'a');
  }

  get size(): number {
    return this.known.size;
  }

  /** The score of these exact weights, if an attempt of this node scored them. */
  get(w: Weights): Scored | undefined {
    return this.known.get(JSON.stringify(w));
  }

  add(w: Weights, v: Scored): void {
    const key = JSON.stringify(w);
    this.known.set(key, v);
    if (this.fd === undefined) return;
    // A leading newline ends a line a kill cut short; JSON numbers round-trip doubles exactly.
    writeAll(this.fd, Buffer.from(`\n${JSON.stringify({ w, score: v.score, loss: v.loss })}\n`));
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
