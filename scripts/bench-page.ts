import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/*
 * docs/reference/bench-results.md: the figures of the last committed run of each bench, written
 * from bench/results/*.json (what `npm run bench -- NAME` leaves there). Generated with the
 * reference (`npm run docs`), so a figure on the page is the one in the file beside it.
 */

interface EngineSize {
  nodes: number;
  [k: string]: number | number[] | undefined;
}

interface EngineResults {
  date: string;
  seconds: number;
  machine: { cores: number; node: string; node_start_ms?: number; node_start_with_extra_ca_ms?: number | null };
  sizes: EngineSize[];
  targets: Record<string, boolean | null> | null;
}

const time = (v: number): string => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
const ms = (v: number | number[] | undefined): string => (typeof v === 'number' ? time(v) : '');
const ratio = (v: number | number[] | undefined): string => (typeof v === 'number' ? `${v.toFixed(2)}×` : '');
/** A measure taken in rounds (engine results from 2026-12-07 on): its median, and the fastest and slowest round. */
const withRounds = (s: EngineSize, key: string): string => {
  const all = s[key.replace(/_ms$/, '_rounds_ms')];
  return Array.isArray(all) && all.length > 1 ? `${ms(s[key])} (${time(Math.min(...all))}–${time(Math.max(...all))})` : ms(s[key]);
};
const met = (t: boolean | null | undefined, what: string): string => (t === undefined || t === null ? '' : `${what}: ${t ? 'met' : 'not met'}`);

function enginePage(r: EngineResults): string {
  const t = r.targets ?? {};
  const rows: string[][] = [];
  // make on one directory of files was the only baseline until 2026-12-07; since, make builds dfwe's own paths, and the other is measured beside it.
  const both = r.sizes.some((s) => s.make_flat_noop_ms !== undefined);
  const none = both ? ['', ''] : [];
  for (const s of r.sizes) {
    const mid = s.nodes === 20_002;
    const target = (key: string, what: string): string => (mid ? met(t[key], what) : '');
    const flat = (key: string, ratioKey: string, rounds = false): string[] => (both ? [rounds ? withRounds(s, key) : ms(s[key]), ratio(s[ratioKey])] : []);
    rows.push(
      [s.nodes.toLocaleString('en'), 'no-op `status`', ms(s.noop_status_ms), ms(s.make_noop_ms), ratio(s.ratio_noop_status_vs_make), ...flat('make_flat_noop_ms', 'ratio_noop_status_vs_make_flat'), target('noop_status_within_2x_make', '≤ 2×')],
      // Measured since 2026-12-07: Node started and one lstat of each witnessed path, nothing else.
      ...(s.floor_noop_status_ms === undefined ? [] : [['', 'what a no-op costs in Node before its own work: Node started, one lstat of each witnessed path', ms(s.floor_noop_status_ms), ms(s.make_noop_ms), ratio(s.ratio_floor_noop_status_vs_make), ...none, '']]),
      ['', '`status`, one leaf changed', withRounds(s, 'leaf_changed_status_ms'), withRounds(s, 'make_leaf_changed_ms'), ratio(s.ratio_leaf_changed_vs_make), ...flat('make_flat_leaf_changed_ms', 'ratio_leaf_changed_vs_make_flat', true), target('leaf_changed_within_3x_make', '≤ 3×')],
      ['', 'first full run', ms(s.full_run_ms), ms(s.make_full_run_ms), ratio(s.ratio_full_run_vs_make), ...flat('make_flat_full_run_ms', 'ratio_full_run_vs_make_flat'), target('full_run_within_2x_make', '≤ 2.0×')],
      // Timed since b6c45c8; earlier results have no CPU figures.
      ...(s.full_run_cpu_ms === undefined ? [] : [['', 'first full run, CPU (user and system)', ms(s.full_run_cpu_ms), ms(s.make_full_run_cpu_ms), ratio(s.ratio_full_run_cpu_vs_make), ...(both ? [ms(s.make_flat_full_run_cpu_ms), ''] : []), '']]),
      ['', '`status` after an edit (a comment)', withRounds(s, 'status_after_edit_ms'), '', '', ...none, target('status_after_edit_within_1s', '≤ 1 s')],
      ['', '`status` after an edit (a stage\'s command)', ms(s.status_after_command_edit_ms), '', '', ...none, ''],
      ['', '`run` after that `status`, one source changed (make: its leaf run)', withRounds(s, 'run_after_status_ms'), withRounds(s, 'make_leaf_run_ms'), ratio(s.ratio_run_after_status_vs_make_leaf_run), ...flat('make_flat_leaf_run_ms', 'ratio_run_after_status_vs_make_flat_leaf_run', true), target('run_after_status_within_3x_make_leaf_run', '≤ 3×')],
      ['', 'peak memory: no-op `status` / full run', `${s.noop_status_rss_mb} MB / ${s.full_run_rss_mb} MB`, `— / ${s.make_full_run_rss_mb} MB`, '', ...none, target('noop_rss_within_150mb', 'no-op ≤ 150 MB')],
    );
  }
  const head = both ? ['nodes', 'measure', 'dfwe', 'make -r, dfwe\'s paths', 'ratio', 'make -r, one directory', 'ratio', 'target at 20,002 nodes'] : ['nodes', 'measure', 'dfwe', 'make -r, one directory', 'ratio', 'target at 20,002 nodes'];
  return [
    '## Engine overhead',
    '',
    `\`bench/results/engine.json\`, from \`npm run bench -- engine\` (\`DFWE_BENCH_SIZES\` picks the sizes) on ${r.date.slice(0, 10)}: ${r.machine.cores} cores, Node ${r.machine.node}${nodeStart(r.machine)}, ${Math.round(r.seconds)} s in all. The DAG and the method are in [Measured results](../benchmarks.md#engine-overhead); each ratio is against make's time in the same run${both ? ': make builds the same files at dfwe\'s paths (the baseline since 2026-12-07), and beside it the same DAG in one directory of files (the baseline before)' : ', building the DAG in one directory of files'}.`,
    '',
    [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n'),
  ].join('\n');
}

/** Node's start on the bench's machine, where the results say (since 2026-12-08). */
function nodeStart(m: EngineResults['machine']): string {
  if (m.node_start_ms === undefined) return '';
  const withCa = m.node_start_with_extra_ca_ms ? ` (${m.node_start_with_extra_ca_ms} ms with its \`NODE_EXTRA_CA_CERTS\`, which dfwe's launcher hands over rather than have Node parse it)` : '';
  return ` starting in ${m.node_start_ms} ms${withCa}`;
}

/** A leaf of a results file and its value, by its path in the file (`sizes[2].full_run_ms`). */
function leaves(v: unknown, path: string, out: [string, string][]): void {
  if (Array.isArray(v)) v.forEach((x, i) => leaves(x, `${path}[${i}]`, out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k, out);
  else out.push([path, v === null ? 'null' : typeof v === 'string' ? v : JSON.stringify(v)]);
}

/** Table cells cannot hold a bar or a line break. */
const cell = (t: string): string => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Where Measured results explains each bench. */
const GUIDE: Record<string, string> = {
  hash: 'content-digests', sweep: 'sweeps', report: 'the-report-of-a-large-sweep', ml: 'ml-stages', dfwe: 'dfwe-on-the-synthetic-quickstart',
  merge: 'merging-checkpoints', slurm: 'slurm-executor', reliability: 'reliability', remote: 'a-shared-cache',
};

/**
 * Any other bench's results: every figure in its file, by its path there. Each bench writes its
 * own shape; the guide that explains it is in Measured results.
 */
function resultsPage(name: string, r: Record<string, unknown>): string {
  const { date, seconds, machine, ...rest } = r;
  const rows: [string, string][] = [];
  leaves(rest, '', rows);
  const when = typeof date === 'string' ? ` on ${date.slice(0, 10)}` : '';
  const how = typeof seconds === 'number' ? `, ${Math.round(seconds)} s in all` : '';
  const where = machine && typeof machine === 'object' ? `: ${Object.entries(machine).map(([k, v]) => `${k} ${String(v)}`).join(', ')}` : '';
  return [
    `## ${name}`,
    '',
    `\`bench/results/${name}.json\`, from \`npm run bench -- ${name}\`${when}${where}${how}. What each figure measures is in [Measured results](../benchmarks.md${GUIDE[name] ? `#${GUIDE[name]}` : ''}).`,
    '',
    ['| figure | value |', '| --- | --- |', ...rows.map(([k, v]) => `| \`${cell(k)}\` | ${cell(v)} |`)].join('\n'),
  ].join('\n');
}

/** The page, from the results directory as it is. */
export function benchResultsPage(resultsDir: string): string {
  const parts = [
    '<!-- Generated by `npm run docs` from bench/results/*.json. Do not edit: a test fails when this page is stale. -->',
    '',
    '# Bench results, as last committed',
    '',
    'The figures of the last run of each bench whose results are committed in `bench/results/`. A bench not listed here has its figures, with the command that measured them, in [Measured results](../benchmarks.md) only.',
  ];
  const engine = join(resultsDir, 'engine.json');
  if (existsSync(engine)) parts.push('', enginePage(JSON.parse(readFileSync(engine, 'utf8')) as EngineResults));
  const others = existsSync(resultsDir) ? readdirSync(resultsDir).filter((f) => f.endsWith('.json') && f !== 'engine.json').sort() : [];
  for (const f of others) parts.push('', resultsPage(f.slice(0, -'.json'.length), JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as Record<string, unknown>));
  return parts.join('\n') + '\n';
}
