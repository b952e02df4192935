import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dfweTimed, meanCi, round } from './util.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The PyTorch example (pipelines/torch.yaml) over several seeds, from an empty cache each: the
 * target's test accuracy of the baseline finetune and of DFWE, the delta's mean, sd and 95%
 * confidence interval, and the search's diagnostics (dev score of the merge against the best
 * single finetuned expert, the α chosen).
 */
export function benchTorch(seeds: number[], python: string): unknown {
  const perSeed = seeds.map((seed) => {
    const ws = mkdtempSync(join(tmpdir(), 'dfwe-bench-torch-'));
    try {
      mkdirSync(join(ws, 'pipelines'));
      cpSync(join(REPO, 'pipelines/torch.yaml'), join(ws, 'pipelines/torch.yaml'));
      cpSync(join(REPO, 'examples'), join(ws, 'examples'), { recursive: true });
      const t = dfweTimed(ws, ['run', 'pipelines/torch.yaml', '--param', `python=${python}`, '--param', `seed=${seed}`]);
      const test = (stage: string): number => JSON.parse(readFileSync(join(ws, `out/${stage}/metrics`), 'utf8')).t0.score;
      const search = JSON.parse(readFileSync(join(ws, 'out/dfwe/search'), 'utf8'));
      const row = {
        seed, baseline: test('test_baseline'), dfwe: test('test_dfwe'), delta: round(test('test_dfwe') - test('test_baseline')),
        dev_dfwe: round(search.score), dev_best_single: round(search.best_single_score), alpha: search.weights[0].map((a: number) => round(a, 3)), evaluations: search.evaluations, seconds: round(t.ms / 1000, 1),
      };
      process.stderr.write(`torch seed ${seed}: ${JSON.stringify(row)}\n`);
      return row;
    } finally {
      rmSync(ws, { recursive: true, force: true });
    }
  });
  const d = perSeed.map((r) => r.delta);
  const { mean, sd, ci95 } = meanCi(d);
  return { python, seeds: perSeed, delta_mean: round(mean), delta_sd: round(sd), delta_ci95: ci95.map((x) => round(x)), ahead_on: d.filter((x) => x > 0).length };
}
