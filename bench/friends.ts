import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { majorityScore } from '../src/ml/baseline.js';
import { readDataset } from '../src/ml/data/dataset-io.js';
import { dfweTimed, meanCi, RESULTS, round } from './util.js';

/**
 * `npm run bench:friends`: pipelines/friends.yaml for several seeds (default 0–4), from the
 * repository root (its data param points at ../shared/data/friends), from an empty cache.
 * Per target and seed: every finetuned expert's dev and test score, the expert best on dev,
 * the uniform merge, the output ensemble of the experts, DFWE (and its α), the baseline and the
 * majority class. Over seeds: paired 95% intervals of each arm's delta over the baseline, per
 * target and for the average, and how many seeds DFWE is ahead. Writes
 * bench/results/friends.json and friends.md.
 */
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PIPELINE = 'pipelines/friends.yaml';

/** The paper's Table 2 (Flan-T5-base, FETA-Friends test sets): baseline and DFWE per target. */
const PAPER: Record<string, [number, number]> = {
  emory_emotion_recognition: [31.167, 34.099],
  reading_comprehension: [57.093, 58.888],
  character_identification: [62.366, 64.469],
  question_answering: [39.758, 41.027],
  personality_detection: [53.818, 57.636],
  relation_extraction: [37.699, 41.733],
  MELD_emotion_recognition: [48.037, 52.63],
};

/**
 * A cache of its own, emptied first: the wall time is that of a first run, with nothing
 * computed before (DFWE_BENCH_KEEP_CACHE=1 keeps it, to resume an interrupted benchmark).
 */
const CACHE = join(REPO, 'out', 'bench-friends-cache');

/** The CLI on this cache, from the repository root. */
const dfwe = (args: string[]): { stdout: string; ms: number } => dfweTimed(REPO, ['--cache', CACHE, ...args]);

interface StageNode {
  id: string;
  vars: { target: string; tasks?: string[] };
  metrics?: Record<string, number>;
}

interface Expert {
  name: string;
  dev: number;
  test: number;
}

interface TargetSeed {
  target: string;
  dev_examples: number;
  test_examples: number;
  experts: Expert[];
  best_on_dev: Expert;
  uniform: { test: number };
  ensemble: { test: number };
  dfwe: { dev: number; test: number; alpha: number[]; evaluations: number };
  baseline: { dev: number; test: number };
  majority: number;
}

/** An expert by what it was trained on before finetuning: {t}, {t} ∪ S, or one source. */
const expertName = (target: string, tasks: string[]): string => (tasks.length > 1 ? '{t}∪S' : tasks[0] === target ? '{t}' : tasks[0]!);

function measureSeed(seed: number): { seconds: number; targets: TargetSeed[] } {
  const pipeline = [PIPELINE, '--param', `seed=${seed}`];
  const run = dfwe(['run', '--jobs', '2', ...pipeline]);
  const stage = (name: string): StageNode[] => (JSON.parse(dfwe(['metrics', '--json', '--stage', name, ...pipeline]).stdout) as { nodes: StageNode[] }).nodes;
  const expanded = JSON.parse(dfwe(['expand', '--json', ...pipeline]).stdout) as { nodes: { id: string; stage: string; vars: { target?: string }; outs: Record<string, string> }[] };
  const ds = readDataset(join(REPO, expanded.nodes.find((n) => n.stage === 'data')!.outs.data!));
  const byTarget = (nodes: StageNode[]): Map<string, StageNode[]> => {
    const m = new Map<string, StageNode[]>();
    for (const n of nodes) m.set(n.vars.target, [...(m.get(n.vars.target) ?? []), n]);
    return m;
  };
  const need = (n: StageNode | undefined, key: string): number => {
    const v = n?.metrics?.[key];
    if (typeof v !== 'number') throw new Error(`seed ${seed}: ${n?.id ?? 'a node'} has no metric ${key}`);
    return v;
  };
  const one = (name: string): Map<string, StageNode> => new Map([...byTarget(stage(name))].map(([t, ns]) => [t, ns[0]!]));
  const finetunes = byTarget(stage('finetune'));
  const expertTests = byTarget(stage('test_expert'));
  const baseline = one('baseline');
  const interp = one('interpolate');
  const testBaseline = one('test_baseline');
  const testDfwe = one('test_dfwe');
  const testUniform = one('test_uniform');
  const testEnsemble = one('test_ensemble');
  const targets = [...finetunes.keys()].map((target): TargetSeed => {
    const score = `${target}.score`;
    const experts = finetunes.get(target)!.map((f) => ({
      name: expertName(target, f.vars.tasks!),
      dev: need(f, 'dev_score'),
      test: need(expertTests.get(target)!.find((e) => e.vars.tasks!.join('+') === f.vars.tasks!.join('+')), score),
    }));
    const search = JSON.parse(readFileSync(join(REPO, expanded.nodes.find((n) => n.stage === 'interpolate' && n.vars.target === target)!.outs.search!), 'utf8')) as { alpha: number[] };
    return {
      target,
      dev_examples: ds.examples(target, 'dev').length,
      test_examples: ds.examples(target, 'test').length,
      experts,
      // Ties go to the first listed ({t}): the choice a user makes on dev alone.
      best_on_dev: experts.reduce((a, e) => (e.dev > a.dev ? e : a)),
      uniform: { test: need(testUniform.get(target), score) },
      ensemble: { test: need(testEnsemble.get(target), score) },
      dfwe: { dev: need(interp.get(target), 'dev_score'), test: need(testDfwe.get(target), score), alpha: search.alpha.map((a) => round(a, 3)), evaluations: need(interp.get(target), 'evaluations') },
      baseline: { dev: need(baseline.get(target), 'dev_score'), test: need(testBaseline.get(target), score) },
      majority: majorityScore(ds, target, 'test'),
    };
  });
  return { seconds: round(run.ms / 1000, 1), targets };
}

const seeds = (process.env.DFWE_BENCH_SEEDS ?? '0,1,2,3,4').split(',').map(Number);
if (!existsSync(join(REPO, '../shared/data/friends'))) {
  process.stderr.write('bench:friends needs ../shared/data/friends beside the repository\n');
  process.exit(2);
}
if (process.env.DFWE_BENCH_KEEP_CACHE !== '1') rmSync(CACHE, { recursive: true, force: true });
const t0 = performance.now();
const perSeed: { seed: number; seconds: number; targets: TargetSeed[] }[] = [];
for (const seed of seeds) {
  perSeed.push({ seed, ...measureSeed(seed) });
  process.stderr.write(`friends seed ${seed}: ${perSeed.at(-1)!.seconds} s\n`);
}

type Arm = 'dfwe' | 'uniform' | 'ensemble' | 'best_on_dev';
const ARMS: Arm[] = ['dfwe', 'uniform', 'ensemble', 'best_on_dev'];
const testOf = (r: TargetSeed, arm: Arm | 'baseline'): number => r[arm].test;
const interval = (xs: number[]): { mean: number; sd: number; ci95: [number, number] } => {
  const s = meanCi(xs);
  return { mean: round(s.mean), sd: round(s.sd), ci95: [round(s.ci95[0]), round(s.ci95[1])] };
};
const targetNames = perSeed[0]!.targets.map((t) => t.target);
const rows = targetNames.map((target) => {
  const runs = perSeed.map((s) => s.targets.find((t) => t.target === target)!);
  const deltas = Object.fromEntries(ARMS.map((arm) => [arm, interval(runs.map((r) => testOf(r, arm) - r.baseline.test))])) as Record<Arm, ReturnType<typeof interval>>;
  const [paperBaseline, paperDfwe] = PAPER[target]!;
  return {
    target,
    dev_examples: runs[0]!.dev_examples,
    test_examples: runs[0]!.test_examples,
    paper: { baseline: paperBaseline, dfwe: paperDfwe, delta: round(paperDfwe - paperBaseline, 3) },
    majority: interval(runs.map((r) => r.majority)),
    baseline: interval(runs.map((r) => r.baseline.test)),
    dfwe: interval(runs.map((r) => r.dfwe.test)),
    experts: interval(runs.flatMap((r) => r.experts.map((e) => e.test))),
    delta: deltas,
    dfwe_ahead: runs.filter((r) => r.dfwe.test > r.baseline.test).length,
    // How often the search chose a model no better on dev than the best single expert.
    dfwe_dev_over_best_expert: interval(runs.map((r) => r.dfwe.dev - r.best_on_dev.dev)),
  };
});
const averageOver = (arm: Arm): ReturnType<typeof interval> => interval(perSeed.map((s) => s.targets.reduce((a, r) => a + testOf(r, arm) - r.baseline.test, 0) / s.targets.length));
const average = Object.fromEntries(ARMS.map((arm) => [arm, averageOver(arm)])) as Record<Arm, ReturnType<typeof interval>>;
const averageAhead = perSeed.filter((s) => s.targets.reduce((a, r) => a + r.dfwe.test - r.baseline.test, 0) > 0).length;
const paperAverage = round(Object.values(PAPER).reduce((a, [b, d]) => a + d - b, 0) / Object.keys(PAPER).length, 3);
const expanded = JSON.parse(dfwe(['expand', '--json', PIPELINE]).stdout) as { instances: number; nodes: unknown[] };
const result = {
  date: new Date().toISOString(), seeds, seconds: round((performance.now() - t0) / 1000, 1),
  nodes_per_seed: expanded.nodes.length, stage_instances_per_seed: expanded.instances,
  targets: rows, average: { delta: average, dfwe_ahead: averageAhead, paper_delta: paperAverage }, per_seed: perSeed,
};
mkdirSync(RESULTS, { recursive: true });
writeFileSync(join(RESULTS, 'friends.json'), JSON.stringify(result, null, 2) + '\n');

const n = seeds.length;
const sign = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`;
const ci = (x: { mean: number; ci95: [number, number] }): string => `${sign(x.mean)} [${sign(x.ci95[0])}, ${sign(x.ci95[1])}]`;
const pm = (x: { mean: number; sd: number }): string => `${x.mean.toFixed(2)} ± ${x.sd.toFixed(2)}`;
const md = [
  `| task | paper baseline | paper DFWE | paper Δ | baseline | DFWE | Δ [95% CI] | DFWE ahead |`,
  `|---|---:|---:|---:|---:|---:|---:|---:|`,
  ...rows.map((r) => `| ${r.target} | ${r.paper.baseline.toFixed(2)} | ${r.paper.dfwe.toFixed(2)} | +${r.paper.delta.toFixed(2)} | ${pm(r.baseline)} | ${pm(r.dfwe)} | ${ci(r.delta.dfwe)} | ${r.dfwe_ahead}/${n} |`),
  `| average | | | +${paperAverage.toFixed(2)} | | | ${ci(average.dfwe)} | ${averageAhead}/${n} |`,
  '',
  `Diagnostics (test scores, mean over ${n} seeds; deltas are paired against the baseline, with 95% CIs):`,
  '',
  `| task | dev / test examples | majority | experts (mean ± sd) | best expert on dev − baseline | uniform merge − baseline | output ensemble − baseline | DFWE dev − best expert dev |`,
  `|---|---:|---:|---:|---:|---:|---:|---:|`,
  ...rows.map((r) => `| ${r.target} | ${r.dev_examples} / ${r.test_examples} | ${r.majority.mean.toFixed(2)} | ${pm(r.experts)} | ${ci(r.delta.best_on_dev)} | ${ci(r.delta.uniform)} | ${ci(r.delta.ensemble)} | ${ci(r.dfwe_dev_over_best_expert)} |`),
  `| average | | | | ${ci(average.best_on_dev)} | ${ci(average.uniform)} | ${ci(average.ensemble)} | |`,
  '',
  `Seeds ${seeds.join(', ')}: ${result.seconds} s in all (${perSeed.map((s) => `${s.seconds} s`).join(', ')}); ${result.nodes_per_seed} nodes per seed from ${result.stage_instances_per_seed} stage instances.`,
].join('\n');
writeFileSync(join(RESULTS, 'friends.md'), md + '\n');
process.stdout.write(md + '\n');
