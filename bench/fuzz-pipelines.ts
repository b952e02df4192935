import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../src/diagnostics.js';
import { Rng } from '../src/ml/random.js';
import { planAll } from '../src/engine/plan.js';
import { openProject } from '../src/project.js';
import { registry } from '../stages/index.js';
import { executors } from '../src/execute/executors/index.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface FuzzStats {
  inputs: number;
  valid: number;
  /** Rejected with every diagnostic located (file:line:col): what the CLI prints with exit 2. */
  located: number;
  /** Rejected with a diagnostic that has no location. */
  unlocated: number;
  /** Anything but a UserError: a stack trace for the user. */
  crashes: number;
  /** The first few failures (unlocated or crashes), with their input. */
  examples: string[];
}

/**
 * Mutate the example pipelines (delete or insert characters, YAML and expression syntax, odd
 * characters; duplicate or drop lines), seeded, and load and plan each one. Every input must be
 * valid or fail with located errors only.
 */
export async function fuzzPipelines(n: number, seed = 'fuzz'): Promise<FuzzStats> {
  const sources = ['quickstart', 'sweep', 'friends'].map((name) => readFileSync(join(REPO, `pipelines/${name}.yaml`), 'utf8'));
  const pieces = ['${{', '}}', ':', ' ', '\n', '-', '[', ']', '{', '}', '"', "'", '#', '&a', '*a', 'stages.', 'params.', '~', '!!', '\t', '0', 'x', 'ü', '/', '..', '\u202e', '$(', '`', '\\', '\u0000'];
  const rng = new Rng(seed);
  const ws = mkdtempSync(join(tmpdir(), 'dfwe-fuzz-'));
  const stats: FuzzStats = { inputs: 0, valid: 0, located: 0, unlocated: 0, crashes: 0, examples: [] };
  try {
    for (let i = 0; i < n; i++) {
      let text = rng.pick(sources);
      for (let k = 0, edits = 1 + rng.int(3); k < edits; k++) {
        const at = rng.int(text.length);
        const lines = text.split('\n');
        switch (rng.int(4)) {
          case 0: text = text.slice(0, at) + text.slice(at + 1 + rng.int(5)); break;
          case 1: text = text.slice(0, at) + rng.pick(pieces) + text.slice(at); break;
          case 2: lines.splice(rng.int(lines.length), 0, lines[rng.int(lines.length)]!); text = lines.join('\n'); break;
          default: lines.splice(rng.int(lines.length), 1); text = lines.join('\n');
        }
      }
      writeFileSync(join(ws, 'dfwe.yaml'), text);
      rmSync(join(ws, 'cache'), { recursive: true, force: true });
      stats.inputs++;
      try {
        planAll(await openProject({ workspace: ws, stageTypes: registry, executors }));
        stats.valid++;
      } catch (err) {
        const unlocated = err instanceof UserError ? err.diagnostics.filter((d) => !d.location) : [];
        if (!(err instanceof UserError)) stats.crashes++;
        else if (unlocated.length) stats.unlocated++;
        else {
          stats.located++;
          continue;
        }
        if (stats.examples.length < 3) stats.examples.push(`input ${i}: ${err instanceof UserError ? err.message : (err as Error).stack}\n--- input ---\n${text}`);
      }
    }
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
  return stats;
}
