import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/ml/random.js';

/*
 * Kill -9 at random moments, again and again: the engine itself, or one running stage. After
 * each kill, every result that had been committed must still be there, byte for byte; at the
 * end, a run without kills must finish and give the same outputs as a workspace that was never
 * killed, and `dfwe verify` must find no damaged object. Used by `npm run bench -- kills` (the
 * full count) and by a test (a few kills).
 */

const BIN = fileURLToPath(new URL('../../bin/dfwe.js', import.meta.url));

/** 8 sources, 8 nodes reading two each, 4 joins, 1 final: 21 nodes, each writing its output in two steps. */
function pipeline(round: number): string {
  const lines = ['version: 1', `params: { round: ${round} }`, 'stages:'];
  const stage = (name: string, reads: string[], sleep: string): void => {
    const inputs = reads.map((r) => ` \${{ stages.${r}.outs.f }}`).join('');
    // Half an output first, then the rest: a kill in between leaves a partial file behind.
    lines.push(`  ${name}:`, `    cmd: echo ${name} \${{ params.round }} > \${{ outs.f }}; sleep ${sleep}; cat${inputs} /dev/null | cksum >> \${{ outs.f }}`, `    outs: { f: out/${name} }`);
  };
  for (let i = 0; i < 8; i++) stage(`s${i}`, [], '0.15');
  for (let i = 0; i < 8; i++) stage(`m${i}`, [`s${i}`, `s${(i + 1) % 8}`], '0.1');
  for (let k = 0; k < 4; k++) stage(`j${k}`, [`m${2 * k}`, `m${2 * k + 1}`], '0.1');
  stage('final', ['j0', 'j1', 'j2', 'j3'], '0.05');
  return lines.join('\n') + '\n';
}

function files(dir: string): Map<string, string> {
  let names: string[];
  try {
    names = readdirSync(dir, { recursive: true, encoding: 'utf8' });
  } catch {
    return new Map();
  }
  return new Map(names.filter((n) => statSync(join(dir, n)).isFile()).map((n) => [n, readFileSync(join(dir, n), 'utf8')]));
}

function run(ws: string, args: string[]): { child: ChildProcess; done: Promise<number> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ws, env: { ...process.env, CI: 'true' }, stdio: 'ignore' });
  const done = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  return { child, done };
}

async function runningStages(engine: number, exited: Promise<number>): Promise<number[]> {
  let done = false;
  void exited.then(() => (done = true));
  for (let waited = 0; waited < 3000 && !done; waited += 50) {
    const pids = spawnSync('pgrep', ['-P', String(engine)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    if (pids.length) return pids;
    await new Promise((res) => setTimeout(res, 50));
  }
  return [];
}

/** False when the process ended on its own just before the kill. */
function killQuietly(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

export interface KillStats {
  kills: number;
  engine_kills: number;
  stage_kills: number;
  /** Runs that finished before their kill came. */
  runs_completed: number;
  rounds: number;
  /** Committed records checked after kills (the same record counts once per check). */
  records_checked: number;
  lost_records: number;
  changed_records: number;
  corrupt_objects: number;
  final_outputs_match: boolean;
  nodes: number;
}

export async function killLoop(kills: number, seed = 1): Promise<KillStats> {
  const rng = new Rng(`kill-loop:${seed}`);
  const ws = mkdtempSync(join(tmpdir(), 'dfwe-kills-'));
  const stats: KillStats = { kills: 0, engine_kills: 0, stage_kills: 0, runs_completed: 0, rounds: 1, records_checked: 0, lost_records: 0, changed_records: 0, corrupt_objects: 0, final_outputs_match: false, nodes: 21 };
  let round = 0;
  writeFileSync(join(ws, 'dfwe.yaml'), pipeline(round));
  const committed = new Map<string, string>();
  try {
    while (stats.kills < kills) {
      const r = run(ws, ['run', '--jobs', '4']);
      const delay = 200 + rng.int(2500);
      const killEngine = rng.chance(0.5);
      const timed = await Promise.race([r.done.then(() => false), new Promise<boolean>((res) => setTimeout(() => res(true), delay))]);
      // A stage kill waits (briefly) for a stage to be running: on a loaded machine the engine may still be planning.
      const stages = timed && !killEngine ? await runningStages(r.child.pid!, r.done) : [];
      const alive = r.child.exitCode === null && r.child.signalCode === null;
      if (!alive) {
        stats.runs_completed++;
        // Everything is cached: change the round so the next run has work to be killed in.
        round++;
        stats.rounds++;
        writeFileSync(join(ws, 'dfwe.yaml'), pipeline(round));
      } else if (stages.length > 0 && killQuietly(rng.pick(stages))) {
        stats.stage_kills++;
        stats.kills++;
      } else {
        r.child.kill('SIGKILL');
        stats.engine_kills++;
        stats.kills++;
      }
      await r.done;
      // Every record committed so far is still there, unchanged.
      for (const [path, text] of committed) {
        stats.records_checked++;
        let now: string | undefined;
        try {
          now = readFileSync(join(ws, 'cache/records', path), 'utf8');
        } catch {
          stats.lost_records++;
          continue;
        }
        if (now !== text) stats.changed_records++;
      }
      for (const [path, text] of files(join(ws, 'cache/records'))) committed.set(path, text);
    }
    // Orphaned stages of a killed engine may still be running: the next run stops them (stale leases).
    const final = await run(ws, ['run', '--jobs', '4']).done;
    if (final !== 0) throw new Error(`the run after ${stats.kills} kills failed (exit ${final}) in ${ws}`);
    const verify = spawnSync(process.execPath, [BIN, 'verify'], { cwd: ws, encoding: 'utf8' });
    stats.corrupt_objects = Number(/(\d+) corrupt/.exec(verify.stdout)?.[1] ?? NaN);
    // The same round in a workspace never killed.
    const clean = mkdtempSync(join(tmpdir(), 'dfwe-kills-clean-'));
    try {
      writeFileSync(join(clean, 'dfwe.yaml'), pipeline(round));
      if ((await run(clean, ['run', '--jobs', '4']).done) !== 0) throw new Error('the reference run failed');
      const want = files(join(clean, 'out'));
      const got = files(join(ws, 'out'));
      stats.final_outputs_match = want.size === stats.nodes && want.size === got.size && [...want].every(([p, t]) => got.get(p) === t);
    } finally {
      rmSync(clean, { recursive: true, force: true, maxRetries: 5 });
    }
    rmSync(ws, { recursive: true, force: true, maxRetries: 5 });
    return stats;
  } catch (err) {
    // The workspace stays for a look.
    throw new Error(`${(err as Error).message} (kill loop workspace: ${ws}; so far ${JSON.stringify(stats)})`);
  }
}
