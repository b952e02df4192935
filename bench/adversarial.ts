import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Rng } from '../src/ml/random.js';
import { BIN } from './util.js';

/*
 * The faults an adversarial user found, each repeated at seeded random moments and counted:
 * two versions of a pipeline run at once in one workspace, gc started during runs, stages that
 * make symlinks (and hardlinks) out of the workspace, stages that leave background writers
 * behind, and (issue 23) a user's files at output paths and in the cache, records edited (some
 * with their checksum recomputed), names such as `constructor` for variables, params and
 * stages, run-history lines whose fields have the wrong type, and checkpoints outside the
 * workspace, undeclared or declared read_only and then changed. Nothing may be lost (a committed record gone), changed (a result that is not what its
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
  rounds: Record<'concurrent_versions' | 'gc_during_run' | 'symlinked_outputs' | 'background_children' | 'user_files' | 'tampered_records' | 'hostile_names' | 'history_lines' | 'outside_checkpoints' | 'changes_beside_a_snapshot', number>;
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
  const s: AdversarialStats = { rounds: { concurrent_versions: 0, gc_during_run: 0, symlinked_outputs: 0, background_children: 0, user_files: 0, tampered_records: 0, hostile_names: 0, history_lines: 0, outside_checkpoints: 0, changes_beside_a_snapshot: 0 }, lost: 0, changed: 0, outside_touched: 0, crashes: 0, examples: [] };
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

      // 5. A user's files at output paths (after a failed attempt, over a finished output) and in
      //    the cache before gc: each survives, byte for byte.
      {
        s.rounds.user_files++;
        const ws = mkdtempSync(join(root, 'user-'));
        writeFileSync(join(ws, 'dfwe.yaml'), 'version: 1\nstages:\n  a:\n    cmd: test -e go && cp in.txt out.txt\n    outs: { o: out.txt }\n  b:\n    cmd: cat in.txt > done.txt\n    outs: { o: done.txt }\n');
        writeFileSync(join(ws, 'in.txt'), `in ${round}\n`);
        check(cli(ws, ['run', '--keep-going']), 'user files: first run');
        const mine = new Map<string, string>([['out.txt', `mine ${round}\n`], ['cache/records/finance.csv', 'x\n'], ['cache/tmp/notes/draft.txt', 'y\n'], ['cache/objects/ab/mine', 'z\n']]);
        if (rng.chance(0.5)) {
          rmSync(join(ws, 'done.txt'));
          mine.set('done.txt', `also mine ${round}\n`);
        }
        for (const [rel, text] of mine) {
          mkdirSync(join(ws, rel, '..'), { recursive: true });
          writeFileSync(join(ws, rel), text);
        }
        writeFileSync(join(ws, 'go'), '');
        writeFileSync(join(ws, 'in.txt'), `in ${round} again\n`);
        check(cli(ws, ['run', '--keep-going']), 'user files: run');
        check(cli(ws, ['gc', '--keep-runs', String(rng.int(3))]), 'user files: gc');
        for (const [rel, text] of mine) {
          let now: string | undefined;
          try {
            now = readFileSync(join(ws, rel), 'utf8');
          } catch {
            now = undefined;
          }
          if (now !== text) {
            s.lost++;
            note(`user files round ${round}: ${rel} is ${JSON.stringify(now)}`);
          }
        }
      }

      // 6. Records edited: another object named (the checksum finds it), and links out or two
      //    entries at one path, some of these with the checksum and manifest recomputed as a
      //    forger would (the shape checks find them). Nothing outside is touched, and the outputs
      //    are what the pipeline computes. (A forger who reseals a record naming another valid
      //    object is beyond an unkeyed checksum: that needs records signed with a key.)
      {
        s.rounds.tampered_records++;
        const outside = mkdtempSync(join(root, 'outside-'));
        writeFileSync(join(outside, 'keep.txt'), 'outside\n');
        const before = snapshot(outside);
        const ws = mkdtempSync(join(root, 'records-'));
        const yaml = `version: 1\nstages:\n  f:\n    cmd: echo F${round} > out/f\n    outs: { o: out/f }\n  d:\n    cmd: mkdir -p out/d/e && echo D${round} > out/d/e/x && echo G > out/d/g\n    outs: { o: out/d }\n`;
        writeFileSync(join(ws, 'dfwe.yaml'), yaml);
        mkdirSync(join(ws, 'out'));
        check(cli(ws, ['run']), 'records: first run');
        const edits: ((r: Record<string, any>, other: Record<string, any>) => void)[] = [
          (r, other) => {
            const o = Object.values(r.outputs)[0] as Record<string, any>;
            const p = Object.values(other.outputs)[0] as Record<string, any>;
            Object.assign(o, { digest: p.digest, size: p.size, files: p.files, links: p.links, dirs: p.dirs, kind: p.kind });
          },
          (r) => Object.assign(Object.values(r.outputs)[0] as object, { kind: 'dir', files: [], links: [{ path: 'L', target: outside }], dirs: ['L/PWNED'] }),
          (r) => Object.assign(Object.values(r.outputs)[0] as object, { kind: 'dir', files: [], links: [{ path: 'up', target: '..' }, { path: 'L', target: 'up/../..' }] }),
          (r) => {
            const o = Object.values(r.outputs)[0] as Record<string, any>;
            if (o.kind === 'dir') o.links = [{ path: o.files[0].path, target: 'x' }];
          },
        ];
        const { keyOf } = await import('../src/util/hash.js');
        const { manifestDigest } = await import('../src/keys/tree.js');
        const dir = join(ws, 'cache/records');
        const paths = (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[]).filter((p) => p.endsWith('.json')).map((p) => join(dir, p));
        const records = paths.map((p) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, any>);
        const i = rng.int(records.length);
        const r = records[i]!;
        const e = rng.int(edits.length);
        edits[e]!(r, records[(i + 1) % records.length]!);
        if (e > 0 && rng.chance(0.5)) {
          for (const o of Object.values(r.outputs) as Record<string, any>[]) if (o.kind === 'dir') o.digest = manifestDigest(o.files, o.links ?? [], o.dirs ?? []);
          delete r.check;
          r.check = keyOf(r);
        }
        rmSync(paths[i]!);
        writeFileSync(paths[i]!, JSON.stringify(r));
        rmSync(join(ws, 'out'), { recursive: true });
        const again = check(cli(ws, ['run']), 'records: run');
        if (again.code !== 0 || outputs(ws) !== referenceOf(yaml)) {
          s.changed++;
          note(`records round ${round}: exit ${again.code}, outputs ${outputs(ws)}: ${again.stderr.slice(-300)}`);
        }
        if (snapshot(outside) !== before) {
          s.outside_touched++;
          note(`records round ${round}: outside changed`);
        }
      }

      // 7. Sweep variables, params and stages named as an object's own members.
      {
        s.rounds.hostile_names++;
        const ws = mkdtempSync(join(root, 'names-'));
        const names = ['constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString'];
        const v = names[rng.int(names.length)]!;
        const p = names[rng.int(names.length)]!;
        writeFileSync(join(ws, 'dfwe.yaml'), `version: 1\nparams:\n  ${p}: 7\nsweep:\n  ${v}: [a, b]\nstages:\n  ${names[rng.int(names.length)]}:\n    cmd: echo \${{ ${v} }} \${{ params.${p} }} > out/o-\${{ ${v} }}\n    outs: { o: "out/o-\${{ ${v} }}" }\n`);
        mkdirSync(join(ws, 'out'));
        const r = check(cli(ws, ['run', '--only', `${v}=b`]), `names ${v}/${p}: run`);
        for (const args of [['status', '--all'], ['expand'], ['runs'], ['metrics'], ['status', '--only', `${names[rng.int(names.length)]}=a`], ['status', '--param', `${names[rng.int(names.length)]}=1`]]) check(cli(ws, args), `names ${v}/${p}: ${args.join(' ')}`);
        let o: string | undefined;
        try {
          o = readFileSync(join(ws, 'out/o-b'), 'utf8');
        } catch {
          o = undefined;
        }
        if (r.code !== 0 || o !== 'b 7\n') {
          s.changed++;
          note(`names round ${round} (${v}, ${p}): exit ${r.code}, out ${JSON.stringify(o)}: ${r.stderr.slice(-300)}`);
        }
      }

      // 8. Run-history lines of valid JSON with fields of the wrong type: runs, diff and report
      //    read them without a crash.
      {
        s.rounds.history_lines++;
        const ws = mkdtempSync(join(root, 'history-'));
        writeFileSync(join(ws, 'dfwe.yaml'), 'version: 1\nparams:\n  n: 1\nstages:\n  a:\n    cmd: echo ${{ params.n }} > out.txt\n    outs: { o: out.txt }\n');
        check(cli(ws, ['run']), 'history: run 1');
        check(cli(ws, ['run', '--param', 'n=2']), 'history: run 2');
        const dir = join(ws, 'cache/runs');
        const names = readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort();
        const file = join(dir, names[rng.int(names.length)]!);
        const hostile: unknown[] = ['x', 5, -1, 1e9, 1e300, null, true, [], {}, [1, 'a'], { a: { b: 'c' } }, '__proto__', 'constructor'];
        const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
        for (let m = 0; m < 3; m++) {
          const line = lines[rng.int(lines.length)]!;
          const keys = Object.keys(line);
          const key = keys[rng.int(keys.length)]!;
          const value = hostile[rng.int(hostile.length)];
          const inner = line[key];
          if (inner && typeof inner === 'object' && !Array.isArray(inner) && Object.keys(inner).length && rng.chance(0.5)) {
            const ik = Object.keys(inner);
            (inner as Record<string, unknown>)[ik[rng.int(ik.length)]!] = value;
          } else line[key] = value;
        }
        writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
        for (const args of [['runs'], ['runs', '--json'], ['diff'], ['report', '-o', 'r.html']]) check(cli(ws, args), `history: ${args.join(' ')}`);
      }

      // 9. A checkpoint outside the workspace, named absolute or through `..`: undeclared, a
      //    located error that reads nothing; declared read_only, keyed by its content (each
      //    change reruns the stage that reads it) and never written.
      {
        s.rounds.outside_checkpoints++;
        const outside = mkdtempSync(join(root, 'models-'));
        const model = join(outside, 'model.safetensors');
        writeFileSync(model, `v0 ${round}\n`);
        const ws = mkdtempSync(join(root, 'reader-'));
        const named = rng.chance(0.5) ? model : relative(ws, model);
        const stages = `stages:\n  use:\n    cmd: cat ${named} > out.txt\n    deps: [${named}]\n    outs: { o: out.txt }\n`;
        writeFileSync(join(ws, 'dfwe.yaml'), `version: 1\n${stages}`);
        const untouched = snapshot(outside);
        const u = check(cli(ws, ['run']), 'outside: undeclared');
        if (u.code !== 2 || !/dfwe\.yaml:5:\d+: error: .* lies outside the workspace/.test(u.stderr) || existsSync(join(ws, 'out.txt'))) {
          s.changed++;
          note(`outside round ${round}: an undeclared checkpoint gave exit ${u.code}: ${u.stderr.slice(-300)}`);
        }
        if (snapshot(outside) !== untouched) s.outside_touched++;
        writeFileSync(join(ws, 'dfwe.yaml'), `version: 1\nread_only: [${rng.chance(0.5) ? outside : relative(ws, outside)}]\n${stages}`);
        for (let v = 0; v < 3; v++) {
          // Same length each time, written at once: only the content tells the versions apart.
          if (v > 0) writeFileSync(model, `v${v} ${round}\n`);
          const before = snapshot(outside);
          const r = check(cli(ws, ['run']), `outside: version ${v}`);
          let got: string | undefined;
          try {
            got = readFileSync(join(ws, 'out.txt'), 'utf8');
          } catch {
            got = undefined;
          }
          if (r.code !== 0 || got !== readFileSync(model, 'utf8')) {
            s.changed++;
            note(`outside round ${round}, version ${v}: exit ${r.code}, out ${JSON.stringify(got)}: ${r.stderr.slice(-300)}`);
          }
          if (snapshot(outside) !== before) s.outside_touched++;
        }
      }

      // 10. Changes beside a snapshot, which it keeps vouching through (a file made on the way, a
      //     record written in one of its shards, a source touched: the run after it is told from
      //     it, opening the part it needs) and ones it must not (a
      //     directory on the way swapped for a symlink out, or for a real one holding such a
      //     symlink; a record of it replaced; a source's content changed with its size and mtime
      //     kept): the next run gives what the pipeline computes and writes nothing outside.
      {
        s.rounds.changes_beside_a_snapshot++;
        const ws = mkdtempSync(join(root, 'beside-'));
        const outside = mkdtempSync(join(root, 'away-'));
        writeFileSync(join(outside, 'keep.txt'), 'not yours\n');
        mkdirSync(join(ws, 'src'));
        const source = join(ws, 'src/in.txt');
        const old = new Date(Date.now() - 3600_000);
        writeFileSync(source, `in ${round}\n`);
        utimesSync(source, old, old);
        writeFileSync(join(ws, 'dfwe.yaml'), `version: 1
stages:
  a:
    cmd: cat src/in.txt > \${{ outs.f }}
    deps: [src/in.txt]
    outs: { f: out/x/a/f }
  b:
    cmd: cat \${{ stages.a.outs.f }} > \${{ outs.g }} && echo b >> \${{ outs.g }}
    outs: { g: out/x/b/g }
  c:
    foreach: { i: [0, 1] }
    cmd: echo c \${{ i }} > \${{ outs.h }}
    outs: { h: ~ }
`);
        // c's two nodes: a change to the source reaches half the pipeline, and the run after it
        // opens only that half (engine/part-run.ts).
        check(cli(ws, ['run']), 'beside: first run');
        check(cli(ws, ['status']), 'beside: status');
        const records = (): string[] => (readdirSync(join(ws, 'cache/records'), { recursive: true, encoding: 'utf8' }) as string[]).filter((f) => f.endsWith('.json')).map((f) => join(ws, 'cache/records', f));
        // [what, the change, whether the workspace now leads outside (a run must refuse, located)]
        const variants: [string, () => void, boolean?][] = [
          ['out/x swapped for a real directory whose a/ and b/ are symlinks to them outside', () => {
            renameSync(join(ws, 'out/x'), join(outside, 'x'));
            mkdirSync(join(ws, 'out/x'));
            for (const d of ['a', 'b']) symlinkSync(join(outside, 'x', d), join(ws, 'out/x', d));
          }, true],
          ['a swap file in the workspace and in out/', () => {
            writeFileSync(join(ws, '.dfwe.yaml.swp'), 'swap');
            writeFileSync(join(ws, 'out/.x.swp'), 'swap');
          }],
          ['a record written beside its own', () => {
            const r = records()[rng.int(records().length)]!;
            writeFileSync(join(r, '..', `${relative(join(ws, 'cache/records'), r).slice(0, 2)}${'7'.repeat(30)}.json`), readFileSync(r));
          }],
          ['one of its records replaced by rename', () => {
            const r = records()[rng.int(records().length)]!;
            writeFileSync(`${r}.tmp`, readFileSync(r));
            renameSync(`${r}.tmp`, r);
          }],
          ['a source touched', () => utimesSync(source, new Date(Date.now() - 1800_000), new Date(Date.now() - 1800_000))],
          ['a source changed, its size and mtime kept', () => {
            const st = statSync(source);
            writeFileSync(source, `IN ${round}\n`);
            utimesSync(source, st.atime, st.mtime);
          }],
          ['out/x swapped for a symlink to a copy outside', () => {
            renameSync(join(ws, 'out/x'), join(outside, 'x'));
            symlinkSync(join(outside, 'x'), join(ws, 'out/x'));
          }, true],
        ];
        // In turn, so that 20 rounds try each at least twice (and the tests' two, a refusal and a swap file).
        const [what, change, leadsOutside] = variants[round % variants.length]!;
        change();
        const away = snapshot(outside);
        const r = check(cli(ws, ['run']), `beside: run after ${what}`);
        // A symlink on the way: a located refusal before anything runs (the snapshot does not
        // vouch for it), again once a node must run (its source changed). Once the workspace is
        // whole again, the outputs are what the pipeline computes from the source as it is.
        if (leadsOutside) {
          writeFileSync(source, `ch ${round}\n`);
          const again = check(cli(ws, ['run']), `beside: run after ${what}, the source changed`);
          for (const x of [r, again]) {
            if (x.code !== 2 || !/outside the workspace/.test(x.stderr)) {
              s.changed++;
              note(`beside round ${round} (${what}): exit ${x.code}: ${x.stderr.slice(-300)}`);
            }
          }
        }
        if (snapshot(outside) !== away) {
          s.outside_touched++;
          note(`beside round ${round} (${what}): outside changed`);
        }
        if (leadsOutside) {
          rmSync(join(ws, 'out'), { recursive: true, force: true });
          check(cli(ws, ['run']), `beside: run after ${what}, out removed`);
        } else if (r.code !== 0) {
          s.changed++;
          note(`beside round ${round} (${what}): exit ${r.code}: ${r.stderr.slice(-300)}`);
        }
        const want = readFileSync(source, 'utf8');
        let got: string[];
        try {
          got = [readFileSync(join(ws, 'out/x/a/f'), 'utf8'), readFileSync(join(ws, 'out/x/b/g'), 'utf8')];
        } catch {
          got = [];
        }
        if (got[0] !== want || got[1] !== `${want}b\n`) {
          s.changed++;
          note(`beside round ${round} (${what}): outputs ${JSON.stringify(got)} for ${JSON.stringify(want)}`);
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true, maxRetries: 5 });
  }
  return s;
}
