import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dfweTimed, round } from './util.js';

/**
 * Overhead of the Slurm executor on trivial nodes, against the same jobs submitted by hand in
 * the same run: what the cluster itself costs per job. Needs a reachable cluster
 * (scripts/local-slurm.sh start). Two shapes:
 * - a chain (each node waits for the previous): the latency a node adds, against
 *   `sbatch --wait` one job after another;
 * - independent nodes, --jobs at once: throughput, against submitting all jobs with sbatch and
 *   polling squeue until they have all ended.
 */
function chainYaml(n: number): string {
  const lines = ['version: 1', 'stages:'];
  for (let i = 0; i < n; i++) lines.push(`  s${i}:`, `    cmd: echo ${i}${i ? ` \${{ stages.s${i - 1}.outs.f }}` : ''} > \${{ outs.f }}`, `    outs: { f: out/s${i} }`);
  return lines.join('\n') + '\n';
}

function fanYaml(n: number): string {
  const lines = ['version: 1', 'stages:'];
  for (let i = 0; i < n; i++) lines.push(`  s${i}:`, `    cmd: echo ${i} > \${{ outs.f }}`, `    outs: { f: out/s${i} }`);
  return lines.join('\n') + '\n';
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
}

function bareChain(n: number, dir: string): number {
  const t = performance.now();
  for (let i = 0; i < n; i++) sh('sbatch', ['--wait', '--quiet', `--output=${join(dir, `bare-${i}.log`)}`, `--wrap=echo ${i} > ${join(dir, `bare-${i}`)}`]);
  return performance.now() - t;
}

async function bareFan(n: number, dir: string): Promise<number> {
  const t = performance.now();
  const ids = Array.from({ length: n }, (_, i) => sh('sbatch', ['--parsable', `--output=${join(dir, `fan-${i}.log`)}`, `--wrap=echo ${i} > ${join(dir, `fan-${i}`)}`]).trim());
  for (;;) {
    const states = sh('squeue', ['-h', '--states=all', `--jobs=${ids.join(',')}`, '-o', '%T']).split('\n').filter(Boolean);
    if (states.length === n && states.every((s) => s === 'COMPLETED')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - t;
}

export async function benchSlurm(chain: number, fan: number, jobs: number): Promise<unknown> {
  if (spawnSync('sinfo', ['-h'], { encoding: 'utf8' }).status !== 0) throw new Error('no Slurm cluster reachable: start one with scripts/local-slurm.sh start and export SLURM_CONF');
  const nodes = sh('sinfo', ['-h', '-N', '-o', '%N']).split('\n').filter(Boolean).length;
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-bench-slurm-'));
  try {
    const ws = (name: string, yaml: string): string => {
      const d = join(dir, name);
      spawnSync('mkdir', ['-p', d]);
      writeFileSync(join(d, 'dfwe.yaml'), yaml);
      return d;
    };
    const chainDfwe = dfweTimed(ws('chain', chainYaml(chain)), ['run', '--executor', 'slurm']).ms;
    const chainBare = bareChain(chain, dir);
    const fanDfwe = dfweTimed(ws('fan', fanYaml(fan)), ['run', '--executor', 'slurm', '--jobs', String(jobs)]).ms;
    const fanBare = await bareFan(fan, dir);
    const chainLocal = dfweTimed(ws('chain-local', chainYaml(chain)), ['run']).ms;
    return {
      cluster: { nodes, version: sh('sinfo', ['--version']).trim() },
      chain: {
        nodes: chain,
        dfwe_slurm_ms: round(chainDfwe), bare_sbatch_wait_ms: round(chainBare), dfwe_local_ms: round(chainLocal),
        per_node_ms: round(chainDfwe / chain), per_node_bare_ms: round(chainBare / chain),
        /** Latency dfwe adds to each job beyond `sbatch --wait`. */
        per_node_overhead_ms: round((chainDfwe - chainBare) / chain),
        ratio_vs_bare: round(chainDfwe / chainBare),
      },
      fan: {
        nodes: fan, jobs,
        dfwe_slurm_ms: round(fanDfwe), bare_submit_and_poll_ms: round(fanBare),
        per_node_ms: round(fanDfwe / fan), per_node_bare_ms: round(fanBare / fan),
        per_node_overhead_ms: round((fanDfwe - fanBare) / fan),
        ratio_vs_bare: round(fanDfwe / fanBare),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
