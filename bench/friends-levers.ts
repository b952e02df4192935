import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dfweTimed, RESULTS, round } from './util.js';

/**
 * `npm run bench:friends-levers`: the levers of pipelines/friends.yaml (item heads, a longer
 * max_len for QA and RC, pretraining the base), each alone against none, judged on DEV scores
 * only: the baseline's best-epoch dev score and DFWE's dev score per target. Test scores are not
 * read. Seeds from DFWE_BENCH_SEEDS (default 0); a cache of its own that is kept, since the
 * configurations share nodes. Writes bench/results/friends-levers.json and .md.
 */
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PIPELINE = 'pipelines/friends.yaml';
const CACHE = process.env.DFWE_LEVERS_CACHE ?? join(REPO, 'out', 'bench-levers-cache');
const CONFIGS: Record<string, string[]> = {
  none: [],
  'long_max_len=256': ['--param', 'long_max_len=256'],
  'item_heads=true': ['--param', 'item_heads=true'],
  'pretrain_epochs=2': ['--param', 'pretrain_epochs=2'],
};

/** The CLI on this cache, from the repository root. */
const dfwe = (args: string[]): { stdout: string; ms: number } => dfweTimed(REPO, ['--cache', CACHE, ...args]);

const devScores = (stage: string, args: string[]): Map<string, number> =>
  new Map((JSON.parse(dfwe(['metrics', '--json', '--stage', stage, ...args]).stdout) as { nodes: { vars: { target: string }; metrics?: { dev_score?: number } }[] }).nodes.map((n) => [n.vars.target, n.metrics?.dev_score ?? NaN]));

if (!existsSync(join(REPO, '../shared/data/friends'))) {
  process.stderr.write('bench:friends-levers needs ../shared/data/friends beside the repository\n');
  process.exit(2);
}
const seeds = (process.env.DFWE_BENCH_SEEDS ?? '0').split(',').map(Number);
const rows: { config: string; seed: number; seconds: number; targets: Record<string, { baseline_dev: number; dfwe_dev: number }> }[] = [];
for (const seed of seeds) {
  for (const [config, extra] of Object.entries(CONFIGS)) {
    const args = [PIPELINE, '--param', `seed=${seed}`, ...extra];
    const run = dfwe(['run', '--jobs', '2', ...args]);
    const baseline = devScores('baseline', args);
    const dfweDev = devScores('interpolate', args);
    rows.push({ config, seed, seconds: round(run.ms / 1000, 1), targets: Object.fromEntries([...baseline].map(([t, b]) => [t, { baseline_dev: b, dfwe_dev: dfweDev.get(t)! }])) });
    process.stderr.write(`levers seed ${seed} ${config}: ${rows.at(-1)!.seconds} s\n`);
  }
}
const targets = Object.keys(rows[0]!.targets);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const summary = Object.keys(CONFIGS).map((config) => {
  const of = rows.filter((r) => r.config === config);
  const per = Object.fromEntries(targets.map((t) => [t, { baseline_dev: round(mean(of.map((r) => r.targets[t]!.baseline_dev))), dfwe_dev: round(mean(of.map((r) => r.targets[t]!.dfwe_dev))) }]));
  return { config, targets: per, baseline_dev: round(mean(targets.map((t) => per[t]!.baseline_dev))), dfwe_dev: round(mean(targets.map((t) => per[t]!.dfwe_dev))) };
});
mkdirSync(RESULTS, { recursive: true });
writeFileSync(join(RESULTS, 'friends-levers.json'), JSON.stringify({ date: new Date().toISOString(), seeds, summary, runs: rows }, null, 2) + '\n');
const md = [
  `Dev scores (baseline / DFWE), seeds ${seeds.join(', ')}:`,
  '',
  `| config | ${targets.join(' | ')} | mean |`,
  `|---|${targets.map(() => '---:').join('|')}|---:|`,
  ...summary.map((s) => `| ${s.config} | ${targets.map((t) => `${s.targets[t]!.baseline_dev.toFixed(2)} / ${s.targets[t]!.dfwe_dev.toFixed(2)}`).join(' | ')} | ${s.baseline_dev.toFixed(2)} / ${s.dfwe_dev.toFixed(2)} |`),
].join('\n');
writeFileSync(join(RESULTS, 'friends-levers.md'), md + '\n');
process.stdout.write(md + '\n');
