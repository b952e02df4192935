import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Merger } from '../src/ml/merge.js';
import type { Weights } from '../src/ml/model.js';
import { dfweTimed, median, round, timeSync } from './util.js';

/**
 * The quickstart's DFWE vs baseline test delta over several seeds, the evaluations each
 * optimizer used (and its delta) on seed 0, and the merge's throughput against a plain memory
 * copy of the same bytes.
 */
export function benchDfwe(seeds: number[]): unknown {
  const quickstart = readFileSync(new URL('../../pipelines/quickstart.yaml', import.meta.url), 'utf8');
  const ws = mkdtempSync(join(tmpdir(), 'dfwe-bench-dfwe-'));
  const runWith = (seed: number, optimizer: string): { delta: number; baseline: number; dfwe: number; evaluations: number; seconds: number } => {
    writeFileSync(join(ws, 'dfwe.yaml'), quickstart.replace('seed: 0', `seed: ${seed}`).replace('optimizer: nelder-mead', `optimizer: ${optimizer}`));
    const t = dfweTimed(ws, ['run']);
    const m = JSON.parse(dfweTimed(ws, ['metrics', '--json']).stdout).tasks[0];
    const search = JSON.parse(readFileSync(join(ws, 'out/interpolate/search'), 'utf8'));
    return { delta: m.delta, baseline: m.baseline, dfwe: m.method, evaluations: search.evaluations, seconds: round(t.ms / 1000, 1) };
  };
  const perSeed = seeds.map((seed) => {
    const r = runWith(seed, 'nelder-mead');
    process.stderr.write(`dfwe seed ${seed}: ${JSON.stringify(r)}\n`);
    return { seed, ...r };
  });
  const deltas = perSeed.map((r) => r.delta);
  const mean = deltas.reduce((a, b) => a + b, 0) / deltas.length;
  const sd = Math.sqrt(deltas.reduce((a, d) => a + (d - mean) ** 2, 0) / Math.max(1, deltas.length - 1));
  const optimizers = ['nelder-mead', 'uniform', 'greedy-soup', 'random'].map((name) => {
    const r = runWith(seeds[0]!, name);
    process.stderr.write(`dfwe optimizer ${name}: ${JSON.stringify(r)}\n`);
    return { optimizer: name, ...r };
  });
  rmSync(ws, { recursive: true, force: true });

  // Merge: 5 models of 2M parameters, against copying the same input bytes.
  const k = 5;
  const n = 2_000_000;
  const models: Weights[] = Array.from({ length: k }, (_, j) => new Map([['w', { shape: [n], data: Float32Array.from({ length: n }, (_, i) => ((i * 7 + j) % 13) / 13) }]]));
  const merger = new Merger(models, () => true);
  const alpha = [0.1, 0.2, 0.3, 0.25, 0.15];
  const mergeMs = median(5, () => timeSync(() => merger.merge(alpha)));
  const dst = new Float32Array(n);
  const copyMs = median(5, () => timeSync(() => {
    for (const m of models) dst.set(m.get('w')!.data);
  }));
  const bytes = k * n * 4;
  return {
    quickstart: { seeds: perSeed, delta_mean: round(mean), delta_sd: round(sd) },
    optimizers,
    merge: { models: k, parameters: n, input_bytes: bytes, merge_gbps: round(bytes / 1e9 / (mergeMs / 1000)), copy_gbps: round(bytes / 1e9 / (copyMs / 1000)), ratio_merge_vs_copy: round(copyMs / mergeMs, 3) },
  };
}
