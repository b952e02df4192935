import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { dfweTimed, median, round, spawnPool, timeSync } from './util.js';

/**
 * Engine overhead on generated pipelines of trivial `cmd` stages (a binary tree: stage i reads
 * stage (i-1)/2's output). Baselines measured in the same run: an empty Node process (what any
 * CLI pays to start) and the same shell commands spawned by a bare Node pool (what any engine
 * pays to run them).
 */

function pipeline(n: number): { yaml: string; cmds: string[] } {
  const lines = ['version: 1', `name: trivial-${n}`, 'stages:'];
  const cmds: string[] = [];
  for (let i = 0; i < n; i++) {
    const parent = i === 0 ? '' : ` \${{ stages.s${Math.floor((i - 1) / 2)}.outs.f }}`;
    lines.push(`  s${i}:`, `    cmd: echo ${i}${parent} > out/s${i}`, `    outs: { f: out/s${i} }`);
    cmds.push(`echo ${i} > out/s${i}`);
  }
  return { yaml: lines.join('\n') + '\n', cmds };
}

export async function benchEngine(sizes: number[]): Promise<unknown> {
  const jobs = cpus().length;
  const nodeStart = median(5, () => timeSync(() => spawnSync(process.execPath, ['-e', ''])));
  const results = [];
  for (const n of sizes) {
    const ws = mkdtempSync(join(tmpdir(), `dfwe-bench-${n}-`));
    const { yaml, cmds } = pipeline(n);
    writeFileSync(join(ws, 'dfwe.yaml'), yaml);
    spawnSync('mkdir', ['-p', join(ws, 'out')]);
    const statusCold = dfweTimed(ws, ['status']).ms; // parses and validates the YAML
    const fullRun = dfweTimed(ws, ['run', '--jobs', String(jobs)]).ms;
    const noopStatus = median(3, () => dfweTimed(ws, ['status']).ms);
    const noopRun = median(3, () => dfweTimed(ws, ['run']).ms);
    const bare = await spawnPool(cmds, ws, jobs);
    rmSync(ws, { recursive: true, force: true });
    const perNodeEngine = (fullRun - nodeStart) / n;
    const perNodeBare = bare / n;
    results.push({
      nodes: n,
      status_first_ms: round(statusCold),
      noop_status_ms: round(noopStatus),
      noop_run_ms: round(noopRun),
      full_run_ms: round(fullRun),
      bare_spawn_pool_ms: round(bare),
      per_node_wall_ms: round(perNodeEngine, 3),
      per_node_bare_spawn_ms: round(perNodeBare, 3),
      /** What dfwe adds per node beyond spawning the command (wall, with --jobs = cores). */
      per_node_overhead_ms: round(perNodeEngine - perNodeBare, 3),
      ratio_full_run_vs_bare_spawn: round(fullRun / bare),
      ratio_noop_status_vs_node_start: round(noopStatus / nodeStart),
    });
    process.stderr.write(`engine ${n}: ${JSON.stringify(results[results.length - 1])}\n`);
  }
  const largest = results[results.length - 1]!;
  return {
    machine: { cores: jobs, node: process.version },
    baseline_node_start_ms: round(nodeStart),
    sizes: results,
    targets: {
      noop_status_10k_under_1s: largest.nodes >= 10_000 ? largest.noop_status_ms < 1000 : null,
      per_node_overhead_under_10ms: results.every((r) => r.per_node_overhead_ms < 10),
    },
  };
}
