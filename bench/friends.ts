import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, RESULTS, round } from './util.js';
import { spawnSync } from 'node:child_process';

/**
 * `npm run bench:friends`: pipelines/friends.yaml for several seeds, from the repository root
 * (its data param points at ../shared/data/friends). Writes bench/results/friends.json and
 * friends.md: per task baseline and DFWE (mean ± sd over seeds), the delta, the wall time, and
 * how many nodes the targets shared.
 */
const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** The paper reports +2.935 on average over the 7 tasks (Flan-T5-base); its per-task figures are not at hand here. */
const PAPER_AVERAGE_DELTA = 2.935;

/**
 * A cache of its own, emptied first: the wall time is that of a first run, with nothing
 * computed before (DFWE_BENCH_KEEP_CACHE=1 keeps it, to resume an interrupted benchmark).
 */
const CACHE = join(REPO, 'out', 'bench-friends-cache');

function dfwe(args: string[]): { code: number; stdout: string; stderr: string; ms: number } {
  const t = performance.now();
  const r = spawnSync(process.execPath, [BIN, '--cache', CACHE, ...args], { cwd: REPO, env: { ...process.env, CI: 'true' }, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t };
}

const stats = (xs: number[]): { mean: number; sd: number } => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, sd: Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / Math.max(1, xs.length - 1)) };
};

const seeds = (process.env.DFWE_BENCH_SEEDS ?? '0,1,2').split(',').map(Number);
if (!existsSync(join(REPO, '../shared/data/friends'))) {
  process.stderr.write('bench:friends needs ../shared/data/friends beside the repository\n');
  process.exit(2);
}
if (process.env.DFWE_BENCH_KEEP_CACHE !== '1') rmSync(CACHE, { recursive: true, force: true });
const t0 = performance.now();
const perSeed: { seed: number; seconds: number; tasks: { task: string; baseline: number; method: number; delta: number }[] }[] = [];
let shared: unknown;
for (const seed of seeds) {
  // The seed is a param: one pipeline file, a different node set per seed.
  const pipeline = ['pipelines/friends.yaml', '--param', `seed=${seed}`];
  const args = ['run', '--jobs', '2', ...pipeline];
  const r = dfwe(args);
  if (r.code !== 0) throw new Error(`seed ${seed} failed:\n${r.stderr.slice(-3000)}`);
  const m = JSON.parse(dfwe(['metrics', '--json', ...pipeline]).stdout) as { tasks: { task: string; baseline: number; method: number; delta: number }[] };
  perSeed.push({ seed, seconds: round(r.ms / 1000, 1), tasks: m.tasks });
  shared ??= JSON.parse(dfwe(['expand', '--json', ...pipeline]).stdout);
  process.stderr.write(`friends seed ${seed}: ${JSON.stringify(perSeed[perSeed.length - 1])}\n`);
}
const tasks = perSeed[0]!.tasks.map((t) => t.task);
const rows = tasks.map((task) => {
  const of = (k: 'baseline' | 'method' | 'delta'): { mean: number; sd: number } => stats(perSeed.map((s) => s.tasks.find((t) => t.task === task)![k]));
  return { task, baseline: of('baseline'), dfwe: of('method'), delta: of('delta') };
});
const exp = shared as { members: number; instances: number; nodes: unknown[] };
const result = {
  date: new Date().toISOString(), seeds, seconds: round((performance.now() - t0) / 1000, 1),
  nodes_per_seed: exp.nodes.length, stage_instances_per_seed: exp.instances, shared: exp.instances - exp.nodes.length,
  tasks: rows, average_delta: round(stats(rows.map((r) => r.delta.mean)).mean), paper_average_delta: PAPER_AVERAGE_DELTA, per_seed: perSeed,
};
mkdirSync(RESULTS, { recursive: true });
writeFileSync(join(RESULTS, 'friends.json'), JSON.stringify(result, null, 2) + '\n');
const f = (x: { mean: number; sd: number }): string => `${x.mean.toFixed(2)} ± ${x.sd.toFixed(2)}`;
const md = [
  `| task | baseline | DFWE | delta |`, `|---|---:|---:|---:|`,
  ...rows.map((r) => `| ${r.task} | ${f(r.baseline)} | ${f(r.dfwe)} | ${r.delta.mean >= 0 ? '+' : ''}${r.delta.mean.toFixed(2)} |`),
  `| average | | | ${result.average_delta >= 0 ? '+' : ''}${result.average_delta} (paper, Flan-T5-base: +${PAPER_AVERAGE_DELTA}) |`,
  '', `${seeds.length} seeds, ${result.seconds} s in all; ${result.nodes_per_seed} nodes per seed from ${result.stage_instances_per_seed} stage instances (${result.shared} shared).`,
].join('\n');
writeFileSync(join(RESULTS, 'friends.md'), md + '\n');
process.stdout.write(md + '\n');
