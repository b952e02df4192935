import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dfweTimed, median, round } from './util.js';

/**
 * Expansion + planning of sweeps: the 140-member DFWE shape (7 tasks × every 3-subset of the
 * other 6) and a 10,000-member grid (100 seeds × 100 learning rates, 3 stages each, one shared
 * data stage per seed). `status` on a fresh workspace parses, expands and keys everything;
 * the second `status` uses the memoised expansion.
 */
const DFWE_SHAPE = `version: 1
params: { tasks: [t1, t2, t3, t4, t5, t6, t7] }
sweep:
  target: \${{ params.tasks }}
  sources: \${{ combinations(params.tasks.filter(t, t != target), 3) }}
stages:
  base: { cmd: "echo base > \${{ outs.model }}", outs: { model: ~ } }
  expert:
    foreach: { tasks: "\${{ [[target], [target] + sources] + sources.map(s, [s]) }}" }
    cmd: 'echo "\${{ tasks }} \${{ size(tasks) > 1 ? target : tasks[0] }}" > \${{ outs.model }} && cat \${{ stages.base.outs.model }} >> \${{ outs.model }}'
    outs: { model: ~ }
  finetune:
    foreach: { tasks: "\${{ [[target], [target] + sources] + sources.map(s, [s]) }}" }
    cmd: "cat \${{ stages.expert.outs.model }} > \${{ outs.model }} && echo \${{ target }} >> \${{ outs.model }}"
    outs: { model: ~ }
  merge: { cmd: "cat \${{ stages.finetune.outs.model }} > \${{ outs.model }}", outs: { model: ~ } }
`;

const GRID = `version: 1
sweep:
  seed: \${{ range(100) }}
  lr: \${{ range(100).map(i, double(i + 1) / 1000.0) }}
stages:
  data: { cmd: "echo \${{ seed }} > \${{ outs.d }}", outs: { d: ~ } }
  train: { cmd: "echo \${{ lr }} | cat \${{ stages.data.outs.d }} - > \${{ outs.m }}", outs: { m: ~ } }
  evaluate: { cmd: "cat \${{ stages.train.outs.m }} > \${{ outs.r }}", outs: { r: ~ } }
`;

export function benchSweep(): unknown {
  const results: Record<string, unknown> = {};
  for (const [name, yaml] of [['dfwe_140_members', DFWE_SHAPE], ['grid_10000_members', GRID]] as const) {
    const ws = mkdtempSync(join(tmpdir(), 'dfwe-sweep-'));
    writeFileSync(join(ws, 'dfwe.yaml'), yaml);
    const first = dfweTimed(ws, ['status', '--json']);
    const again = median(3, () => dfweTimed(ws, ['status']).ms);
    const expanded = JSON.parse(dfweTimed(ws, ['expand', '--json']).stdout) as { members: number; instances: number; nodes: unknown[] };
    rmSync(ws, { recursive: true, force: true });
    results[name] = {
      members: expanded.members,
      stage_instances: expanded.instances,
      nodes: expanded.nodes.length,
      expand_and_plan_first_ms: round(first.ms),
      plan_memoised_ms: round(again),
    };
    process.stderr.write(`sweep ${name}: ${JSON.stringify(results[name])}\n`);
  }
  return results;
}
