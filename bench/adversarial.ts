import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/ml/random.js';
import { BIN } from './util.js';

/*
 * The faults an adversarial user found, each repeated at seeded random moments and counted:
 * two versions of a pipeline run at once in one workspace, gc started during runs, stages that
 * make symlinks (and hardlinks) out of the workspace, and stages that leave background writers
 * behind. Nothing may be lost (a committed record gone), changed (a result that is not what its
 * pipeline computes), touched outside (a file outside the workspace with other bytes, mode,
 * mtime, inode or link count) or crash (a stack trace).
 */

interface Run {
  code: number;
  stderr: string;
}

function cli(ws: string, args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ws, env: { ...process.env, CI: 'true' }, encoding: 'utf8' });
  return { code: r.status ?? -1, stderr: r.stderr };
}

function cliAsync(ws: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { cwd: ws, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const crashed = (r: Run): boolean => r.code === 70 || /internal error|\n\s+at .*\.js:\d+/.test(r.stderr);

/** The files under a directory, with everything a careless commit would change. */
function snapshot(dir: string): string {
  const out: string[] = [];
  for (const rel of (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[]).sort()) {
    const st = statSync(join(dir, rel));
    if (st.isFile()) out.push(`${rel} ${st.mode} ${st.mtimeMs} ${st.ino} ${st.nlink} ${readFileSync(join(dir, rel), 'utf8')}`);
  }
  return out.join('\n');
}

/** The workspace's outputs, path and content, as one comparable string. */
function outputs(ws: string): string {
  const dir = join(ws, 'out');
  const files = (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[]).filter((rel) => statSync(join(dir, rel)).isFile()).sort();
  return JSON.stringify(files.map((rel) => [rel, readFileSync(join(dir, rel), 'utf8')]));
}

export interface AdversarialStats {
  rounds: Record<'concurrent_versions' | 'gc_during_run' | 'symlinked_outputs' | 'background_children', number>;
  /** Committed records that disappeared while a run used them. */
  lost: number;
  /** Results in the workspace or the cache that are not what their pipeline computes. */
  changed: number;
  /** Files outside the workspace whose bytes, mode, mtime, inode or link count changed. */
  outside_touched: number;
  /** Stack traces or exit code 70. */
  crashes: number;
  examples: string[];
}

const chain = (v: string, sleepMs: number): string => `version: 1
stages:
  x:
    cmd: echo ${v} > \${{ outs.o }}
    outs: { o: out/x }
  y:
    cmd: sleep ${(sleepMs / 1000).toFixed(2)}; cat \${{ stages.x.outs.o }} \${{ stages.x.outs.o }} > \${{ outs.o }}
    outs: { o: out/y }
  z:
    cmd: wc -c < \${{ stages.y.outs.o }} | cat \${{ stages.y.outs.o }} - > \${{ outs.o }}
    outs: { o: out/z }
`;

export async function adversarial(rounds: number, seed = 1): Promise<AdversarialStats> {
  const rng = new Rng(`adversarial:${seed}`);
  const s: AdversarialStats = { rounds: { concurrent_versions: 0, gc_during_run: 0, symlinked_outputs: 0, background_children: 0 }, lost: 0, changed: 0, outside_touched: 0, crashes: 0, examples: [] };
  const note = (what: string): void => void (s.examples.length < 5 && s.examples.push(what));
  const check = (r: Run, what: string): Run => {
    if (crashed(r)) {
      s.crashes++;
      note(`${what}: ${r.stderr.slice(-600)}`);
    }
    return r;
  };
  const root = mkdtempSync(join(tmpdir(), 'dfwe-adversarial-'));
  try {
    // Reference outputs of each pipeline version, from a workspace no one else touched.
    const reference = new Map<string, string>();
    const referenceOf = (yaml: string): string => {
      if (!reference.has(yaml)) {
        const ws = mkdtempSync(join(root, 'ref-'));
        writeFileSync(join(ws, 'dfwe.yaml'), yaml);
        check(cli(ws, ['run']), 'reference run');
        reference.set(yaml, outputs(ws));
      }
      return reference.get(yaml)!;
    };

    for (let round = 0; round < rounds; round++) {
      // 1. Two versions at once, started at random offsets; then each alone must give its reference.
      {
        s.rounds.concurrent_versions++;
        const ws = mkdtempSync(join(root, 'versions-'));
        const a = chain(`A${round}`, 100 + rng.int(400));
        const b = chain(`B${round}`, 100 + rng.int(400));
        writeFileSync(join(ws, 'a.yaml'), a);
        writeFileSync(join(ws, 'b.yaml'), b);
        const first = cliAsync(ws, ['run', 'a.yaml']);
        await sleep(rng.int(600));
        const second = cliAsync(ws, ['run', 'b.yaml']);
        check(await first, 'version a');
        check(await second, 'version b');
        for (const [file, yaml] of [['a.yaml', a], ['b.yaml', b], ['a.yaml', a]] as const) {
          const r = check(cli(ws, ['run', file]), `rerun ${file}`);
          if (r.code !== 0 || outputs(ws) !== referenceOf(yaml)) {
            s.changed++;
            note(`versions round ${round}: ${file} gave ${outputs(ws)} (exit ${r.code})`);
          }
        }
      }

      // 2. gc at a random moment of a run: every record the run committed survives, all cached after.
      {
        s.rounds.gc_during_run++;
        const ws = mkdtempSync(join(root, 'gc-'));
        const n = 150;
        const lines = ['version: 1', 'stages:'];
        for (let i = 0; i < n; i++) lines.push(`  s${i}:`, `    cmd: echo ${round}-${i} > out/s${i}`, `    outs: { f: out/s${i} }`);
        writeFileSync(join(ws, 'dfwe.yaml'), lines.join('\n') + '\n');
        mkdirSync(join(ws, 'out'));
        const run = cliAsync(ws, ['run', '-j1']);
        await sleep(rng.int(1500));
        check(cli(ws, ['gc']), 'gc during run');
        const r = check(await run, 'run during gc');
        const after = check(cli(ws, ['run']), 'run after gc');
        // A record gc removed under the run shows as a node the next run executes again.
        const reran = (after.stderr.match(/^run\s+/gm) ?? []).length;
        if (r.code !== 0 || after.code !== 0 || reran > 0) {
          s.lost += Math.max(reran, 1);
          note(`gc round ${round}: run exit ${r.code}, rerun executed ${reran}: ${r.stderr.slice(-300)}`);
        }
      }

      // 3. Stages that make symlinks and hardlinks out of the workspace: nothing outside changes.
      {
        s.rounds.symlinked_outputs++;
        const outside = mkdtempSync(join(root, 'outside-'));
        for (const f of ['a.txt', 'b.txt']) writeFileSync(join(outside, f), 'same\n');
        mkdirSync(join(outside, 'sub'));
        writeFileSync(join(outside, 'sub', 'secret.txt'), 'not yours\n');
        const before = snapshot(outside);
        const ws = mkdtempSync(join(root, 'links-'));
        const variants = [
          `mkdir -p out/d && echo mine > out/d/own && ln -s ${outside} out/d/v`,
          `mkdir -p out && ln -s ${join(outside, 'a.txt')} out/d`,
          `mkdir -p out/d && ln ${join(outside, 'a.txt')} out/d/hard && ln -s own out/d/inner && echo x > out/d/own`,
          `mkdir -p out/d/e && echo y > out/d/e/f && ln -s ../e/f out/d/e/g`,
        ];
        const pick = variants[rng.int(variants.length)]!;
        writeFileSync(join(ws, 'dfwe.yaml'), `version: 1
stages:
  mk:
    cmd: mkdir -p out && ln -s ${join(outside, 'sub')} out/dir && echo made > \${{ outs.o }}
    outs: { o: out/mk }
  later:
    cmd: cat \${{ stages.mk.outs.o }} > out/dir/secret.txt
    outs: { o: out/dir/secret.txt }
  d:
    cmd: ${pick}
    outs: { o: out/d }
`);
        check(cli(ws, ['run', '--keep-going']), `links (${pick})`);
        rmSync(join(ws, 'out'), { recursive: true, force: true });
        check(cli(ws, ['run', '--keep-going']), `links again (${pick})`);
        check(cli(ws, ['verify']), 'verify');
        if (snapshot(outside) !== before) {
          s.outside_touched++;
          note(`links round ${round} (${pick}): outside changed`);
        }
      }

      // 4. A background writer left behind: what is committed is what stays.
      {
        s.rounds.background_children++;
        const ws = mkdtempSync(join(root, 'bg-'));
        const delay = (50 + rng.int(400)) / 1000;
        writeFileSync(join(ws, 'dfwe.yaml'), `version: 1
stages:
  o:
    cmd: echo start > \${{ outs.f }}; (sleep ${delay.toFixed(2)}; echo LATE >> \${{ outs.f }}) & (sleep ${(delay / 2).toFixed(2)}; echo EARLY >> \${{ outs.f }}) &
    outs: { f: out/o }
  y:
    cmd: cat \${{ stages.o.outs.f }} > \${{ outs.f }}
    outs: { f: out/y }
`);
        check(cli(ws, ['run']), 'background');
        await sleep(delay * 1000 + 300);
        const o = readFileSync(join(ws, 'out/o'), 'utf8');
        const y = readFileSync(join(ws, 'out/y'), 'utf8');
        const v = check(cli(ws, ['verify']), 'verify');
        if (o !== y || v.code !== 0 || /LATE/.test(o)) {
          s.changed++;
          note(`background round ${round}: o=${JSON.stringify(o)} y=${JSON.stringify(y)} verify ${v.code}`);
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true, maxRetries: 5 });
  }
  return s;
}
