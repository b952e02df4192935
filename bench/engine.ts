import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAUNCHER, median, medianOf, round } from './util.js';

/*
 * Engine overhead at scale, against make -r on the same DAG in the same run: `prepare` → N
 * `expert` nodes (foreach over range(N)), each with its own dep file → N `finetune` nodes → one
 * `aggregate` that depends on every finetune (2N + 2 nodes). Every command is trivial, so what is
 * measured is the engine. make gets the equivalent Makefile; its "status" is `make -r -n` (which
 * walks the whole graph and prints what it would run).
 */

function workspaceFor(n: number): string {
  const ws = mkdtempSync(join(tmpdir(), `dfwe-bench-engine-${2 * n + 2}-`));
  mkdirSync(join(ws, 'src'));
  for (let i = 0; i < n; i++) writeFileSync(join(ws, 'src', `d${i}.txt`), `${i}\n`);
  writeFileSync(join(ws, 'dfwe.yaml'), `version: 1
name: engine-${2 * n + 2}
stages:
  prepare:
    cmd: echo prepared > \${{ outs.p }}
    outs: { p: out/prepare }
  expert:
    foreach: { i: "\${{ range(${n}) }}" }
    cmd: cat \${{ stages.prepare.outs.p }} src/d\${{ i }}.txt > \${{ outs.e }}
    deps: ["src/d\${{ i }}.txt"]
    outs: { e: ~ }
  finetune:
    foreach: { i: "\${{ range(${n}) }}" }
    cmd: cat \${{ stages.expert.outs.e }} > \${{ outs.f }}
    outs: { f: ~ }
  aggregate:
    deps: ["\${{ stages.finetune.outs.f }}"]
    cmd: cat out/finetune/*/f | wc -l > \${{ outs.a }}
    outs: { a: out/aggregate }
`);
  // The same DAG for make, twice. `Makefile`: the same files at the same paths as dfwe's, under mk/
  // (mk/expert/i=0/e), so that make's commands and stats do the work dfwe's do. `Makefile.flat`: one
  // directory of files (mkf/expert0), the baseline of the ratios before 2026-12-07, kept beside it:
  // on this VM a stat of a path three directories down took 3.7 us against 1.4 us in one
  // directory, and the aggregate's `cat */f` over 10,000 directories 140 ms against 80 ms.
  // (`=` in a target is make's assignment: it is written as $(E).)
  const same: string[] = ['E := =', 'all: mk/aggregate', 'mk/prepare:', '\t@echo prepared > $@'];
  const flat: string[] = ['all: mkf/aggregate', 'mkf/prepare:', '\t@mkdir -p mkf && echo prepared > $@'];
  for (let i = 0; i < n; i++) {
    same.push(`mk/expert/i$(E)${i}/e: mk/prepare src/d${i}.txt`, `\t@cat mk/prepare src/d${i}.txt > $@`);
    same.push(`mk/finetune/i$(E)${i}/f: mk/expert/i$(E)${i}/e`, `\t@cat mk/expert/i=${i}/e > $@`);
    flat.push(`mkf/expert${i}: mkf/prepare src/d${i}.txt`, `\t@cat mkf/prepare src/d${i}.txt > $@`);
    flat.push(`mkf/finetune${i}: mkf/expert${i}`, `\t@cat mkf/expert${i} > $@`);
  }
  same.push(`mk/aggregate: ${Array.from({ length: n }, (_, i) => `mk/finetune/i$(E)${i}/f`).join(' ')}`, '\t@cat mk/finetune/*/f | wc -l > $@');
  flat.push(`mkf/aggregate: ${Array.from({ length: n }, (_, i) => `mkf/finetune${i}`).join(' ')}`, '\t@cat mkf/finetune* | wc -l > $@');
  writeFileSync(join(ws, 'Makefile'), same.join('\n') + '\n');
  writeFileSync(join(ws, 'Makefile.flat'), flat.join('\n') + '\n');
  return ws;
}

/**
 * Trees done with are moved here, not removed, until the bench's temporary directory goes at its
 * exit. This VM's root is ext4 without a journal, whose allocator skips an inode freed in the last
 * minute (five while its inode table block is unwritten), and a file's creation scans past them:
 * 2 s after 20,000 files were removed it took 289-300 us against 122-178 us before (`npm run bench
 * -- inodes`), and full runs of the 20,002-node DAG took 57.7-71.7 s after a removal against
 * 37.1-41.7 s without. A removal right before a timed run charged that run for it (make's trees were
 * removed just before dfwe's full run, and before make's second).
 */
let trashed = 0;
function aside(path: string): void {
  const trash = join(tmpdir(), 'dfwe-bench-trash');
  mkdirSync(trash, { recursive: true });
  try {
    renameSync(path, join(trash, String(trashed++)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * A fresh tree for make's full run on dfwe's paths: its directories made beforehand, untimed (dfwe
 * makes its own in its timed run; make would need a process for each).
 */
function freshMakeTree(ws: string, n: number): void {
  aside(join(ws, 'mk'));
  for (const stage of ['expert', 'finetune']) for (let i = 0; i < n; i++) mkdirSync(join(ws, 'mk', stage, `i=${i}`), { recursive: true });
}

/** Wall time, CPU time (user and system, the command and what it waited for) and peak RSS of a command. */
interface Timed {
  ms: number;
  cpuMs: number;
  rss: number;
}

/** A command timed through GNU time. */
function timed(ws: string, argv: string[], okCodes = [0], env: NodeJS.ProcessEnv = process.env): Timed {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', ...argv], { cwd: ws, env: { ...env, CI: 'true' }, encoding: 'utf8', maxBuffer: 1 << 28 });
  const ms = performance.now() - t;
  if (!okCodes.includes(r.status ?? -1)) throw new Error(`${argv.join(' ')} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  const [user, sys, rssKb] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { ms, cpuMs: (user! + sys!) * 1000, rss: rssKb! * 1024 };
}

const dfwe = (args: string[]): string[] => [LAUNCHER, ...args];

const withoutExtraCa: NodeJS.ProcessEnv = { ...process.env };
delete withoutExtraCa.NODE_EXTRA_CA_CERTS;

/**
 * What starting Node costs here: with the environment as it is, and without NODE_EXTRA_CA_CERTS,
 * as the launcher (bin/dfwe) starts dfwe. (53.8 ms against 19.5 ms, and 72.6 ms against 24.3 ms,
 * on a VM whose variable named Debian's whole certificate bundle.)
 */
function nodeStarts(): { node_extra_ca_certs_set: boolean; node_start_ms: number; node_start_with_extra_ca_ms: number | null } {
  const start = (env: NodeJS.ProcessEnv): number => median(5, () => {
    const t = performance.now();
    spawnSync(process.execPath, ['-e', '0'], { env });
    return performance.now() - t;
  });
  const set = process.env.NODE_EXTRA_CA_CERTS !== undefined;
  return { node_extra_ca_certs_set: set, node_start_ms: round(start(withoutExtraCa)), node_start_with_extra_ca_ms: set ? round(start(process.env)) : null };
}

/**
 * What this VM charges for the two things a run of trivial stages is made of, so that runs of the
 * bench on different VMs can be told apart: starting a process (a shell loop of /bin/true, as make
 * starts its commands) and a file's life in the cache (create, rename, unlink in one directory,
 * as a lease, a record or an attempt lives). The same code gave a full run 1.29x make's on a VM
 * that took 5 ms a process and 2.7x on one that took 0.4 ms: the ratio is the engine's work
 * against the machine's.
 */
function calibrate(): { process_start_ms: number; file_create_rename_unlink_us: number } {
  const starts = 500;
  const t = performance.now();
  spawnSync('/bin/sh', ['-c', `i=0; while [ $i -lt ${starts} ]; do /bin/true; i=$((i+1)); done`]);
  const processMs = (performance.now() - t) / starts;
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-bench-files-'));
  const files = 2000;
  const u = performance.now();
  for (let i = 0; i < files; i++) {
    writeFileSync(join(dir, `${i}.tmp`), 'x'.repeat(500));
    renameSync(join(dir, `${i}.tmp`), join(dir, String(i)));
    unlinkSync(join(dir, String(i)));
  }
  const fileUs = ((performance.now() - u) * 1000) / files;
  rmSync(dir, { recursive: true, force: true });
  return { process_start_ms: round(processMs, 3), file_create_rename_unlink_us: round(fileUs) };
}

/**
 * A source edited as a person edits it, seconds before the command that sees it: its mtime set 10 s
 * back. One edited within 2 s of the run that follows is witnessed as changed by the snapshot that
 * run writes (its stat cannot vouch for its content yet), so each next round would hash it again.
 * (make's sources are edited as they are: make compares mtimes.)
 */
function edited(ws: string, i: number): void {
  const path = join(ws, 'src', `d${i}.txt`);
  appendFileSync(path, 'changed\n');
  const then = new Date(Date.now() - 10_000);
  utimesSync(path, then, then);
}

/** Rounds of the everyday measures (a leaf changed, the loop, make's leaf run). */
const ROUNDS = 5;

/** `n` rounds of a measure: their median, and every round. */
function rounds(n: number, round: (r: number) => number): { ms: number; all: number[] } {
  const all = Array.from({ length: n }, (_, r) => round(r));
  return { ms: medianOf(all), all };
}

/**
 * What any no-op `status` in Node costs here before its own work: Node started, and one lstat of
 * each path the snapshot witnesses (the pipeline file, every source and every output), in a loop
 * of nothing else.
 */
function floorScript(n: number): string {
  return `const { lstatSync } = require('node:fs'); lstatSync('dfwe.yaml'); lstatSync('out/prepare'); lstatSync('out/aggregate');
for (let i = 0; i < ${n}; i++) { lstatSync('src/d' + i + '.txt'); lstatSync('out/expert/i=' + i + '/e'); lstatSync('out/finetune/i=' + i + '/f'); }`;
}

/** One of make's layouts: its Makefile, and a fresh tree for a full run. */
interface MakeLayout {
  file: string;
  fresh: () => void;
}

/** make's full run of a layout, from a fresh tree. */
function makeFull(ws: string, layout: MakeLayout, jobs: number): Timed {
  layout.fresh();
  return timed(ws, ['make', '-r', '-f', layout.file, `-j${jobs}`]);
}

/**
 * make's measures of a layout after its second full run: the no-op, and rounds of one source
 * changed (`-n`, then the leaf run), each round a source of its own (`firstEdit` on).
 */
function makeMeasures(ws: string, layout: MakeLayout, jobs: number, before: Timed, firstEdit: number) {
  const after = makeFull(ws, layout, jobs);
  const full: Timed = { ms: (before.ms + after.ms) / 2, cpuMs: (before.cpuMs + after.cpuMs) / 2, rss: Math.max(before.rss, after.rss) };
  const noop = median(3, () => timed(ws, ['make', '-r', '-f', layout.file, '-n']).ms);
  const leafRun: number[] = [];
  const leaf = rounds(ROUNDS, (r) => {
    appendFileSync(join(ws, `src/d${firstEdit + r}.txt`), 'changed\n');
    const ms = timed(ws, ['make', '-r', '-f', layout.file, '-n']).ms;
    leafRun.push(timed(ws, ['make', '-r', '-f', layout.file, `-j${jobs}`]).ms);
    return ms;
  });
  return { before, after, full, noop, leaf, leafRun, leafRunMs: medianOf(leafRun) };
}

/** Issue 26's ratio targets of a size's row, against make at dfwe's paths ('') or in one directory ('_flat'). */
function ratioTargets(row: Record<string, number>, make: '' | '_flat'): Record<string, boolean> {
  return {
    noop_status_within_2x_make: row[`ratio_noop_status_vs_make${make}`]! <= 2,
    leaf_changed_within_3x_make: row[`ratio_leaf_changed_vs_make${make}`]! <= 3,
    full_run_within_2x_make: row[`ratio_full_run_vs_make${make}`]! <= 2,
    run_after_status_within_3x_make_leaf_run: row[`ratio_run_after_status_vs_make${make}_leaf_run`]! <= 3,
  };
}

export function benchEngine(sizes: number[]): unknown {
  const jobs = cpus().length;
  const before = calibrate();
  const results: Record<string, number>[] = [];
  const roundsBySize: Record<string, number[]>[] = [];
  for (const nodes of sizes) {
    const n = (nodes - 2) / 2;
    const ws = workspaceFor(n);
    const same: MakeLayout = { file: 'Makefile', fresh: () => freshMakeTree(ws, n) };
    const flat: MakeLayout = { file: 'Makefile.flat', fresh: () => aside(join(ws, 'mkf')) };
    try {
      const first = timed(ws, dfwe(['status']));
      // make's full runs right before dfwe's and again after the rest: this VM's speed moves by
      // half within an hour, so the ratio is taken against the two's mean.
      const sameBefore = makeFull(ws, same, jobs);
      const flatBefore = makeFull(ws, flat, jobs);
      aside(join(ws, 'mk'));
      aside(join(ws, 'mkf'));
      const full = timed(ws, dfwe(['run', '--jobs', String(jobs)]));
      const noop = median(3, () => timed(ws, dfwe(['status'])).ms);
      const noopRss = timed(ws, dfwe(['status'])).rss;
      const noopRun = median(3, () => timed(ws, dfwe(['run'])).ms);
      // Node started as the launcher starts it (without parsing NODE_EXTRA_CA_CERTS's file).
      const floor = median(3, () => timed(ws, [process.execPath, '-e', floorScript(n)], [0], withoutExtraCa).ms);
      // Each measure of a few hundred milliseconds is taken in rounds, its median kept with every
      // round: one shot moved by 50 ms from one hour to the next on this VM.
      // One leaf changed: `status`, then the run that brings the snapshot up to date for the next round.
      const leaf = rounds(ROUNDS, (r) => {
        edited(ws, 5 + r);
        const ms = timed(ws, dfwe(['status'])).ms;
        timed(ws, dfwe(['run', '--jobs', String(jobs)]));
        return ms;
      });
      // The everyday loop: edit the pipeline, status, change a source, run (an expert, its
      // finetune and the aggregate run; the rest is served as the status found it).
      const edit: number[] = [];
      const runAfterStatus = rounds(ROUNDS, (r) => {
        appendFileSync(join(ws, 'dfwe.yaml'), `# an edit ${r}\n`);
        edit.push(timed(ws, dfwe(['status'])).ms);
        edited(ws, 5 + ROUNDS + r);
        return timed(ws, dfwe(['run', '--jobs', String(jobs)])).ms;
      });
      // An edit that changes what runs: every finetune node's command, so half the graph is keyed
      // again and looked up (no record has its new key).
      const yaml = join(ws, 'dfwe.yaml');
      writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('cat ${{ stages.expert.outs.e }} >', 'cat ${{ stages.expert.outs.e }}  >'));
      const commandEdit = timed(ws, dfwe(['status']));
      const mk = makeMeasures(ws, same, jobs, sameBefore, 5 + 2 * ROUNDS);
      const mf = makeMeasures(ws, flat, jobs, flatBefore, 5 + 3 * ROUNDS);
      const row = {
        nodes,
        status_first_ms: round(first.ms), full_run_ms: round(full.ms), full_run_cpu_ms: round(full.cpuMs), full_run_rss_mb: round(full.rss / 2 ** 20),
        noop_status_ms: round(noop), noop_status_rss_mb: round(noopRss / 2 ** 20), noop_run_ms: round(noopRun),
        leaf_changed_status_ms: round(leaf.ms), status_after_edit_ms: round(medianOf(edit)), status_after_command_edit_ms: round(commandEdit.ms), run_after_status_ms: round(runAfterStatus.ms),
        make_full_run_ms: round(mk.full.ms), make_full_run_before_ms: round(mk.before.ms), make_full_run_after_ms: round(mk.after.ms), make_full_run_cpu_ms: round(mk.full.cpuMs), make_noop_ms: round(mk.noop), make_leaf_changed_ms: round(mk.leaf.ms), make_leaf_run_ms: round(mk.leafRunMs), make_full_run_rss_mb: round(mk.full.rss / 2 ** 20),
        ratio_noop_status_vs_make: round(noop / mk.noop), ratio_leaf_changed_vs_make: round(leaf.ms / mk.leaf.ms), ratio_full_run_vs_make: round(full.ms / mk.full.ms),
        ratio_full_run_cpu_vs_make: round(full.cpuMs / mk.full.cpuMs),
        ratio_run_after_status_vs_make_leaf_run: round(runAfterStatus.ms / mk.leafRunMs),
        floor_noop_status_ms: round(floor), ratio_floor_noop_status_vs_make: round(floor / mk.noop),
        per_node_full_run_ms: round(full.ms / nodes, 3), per_node_full_run_cpu_ms: round(full.cpuMs / nodes, 3), per_node_make_full_run_cpu_ms: round(mk.full.cpuMs / nodes, 3),
        // make on one directory of files, the baseline before 2026-12-07.
        make_flat_full_run_ms: round(mf.full.ms), make_flat_full_run_cpu_ms: round(mf.full.cpuMs), make_flat_noop_ms: round(mf.noop), make_flat_leaf_changed_ms: round(mf.leaf.ms), make_flat_leaf_run_ms: round(mf.leafRunMs),
        ratio_noop_status_vs_make_flat: round(noop / mf.noop), ratio_leaf_changed_vs_make_flat: round(leaf.ms / mf.leaf.ms), ratio_full_run_vs_make_flat: round(full.ms / mf.full.ms),
        ratio_run_after_status_vs_make_flat_leaf_run: round(runAfterStatus.ms / mf.leafRunMs),
      };
      // Every round of the measures taken in rounds, in the order taken.
      const all = (xs: number[]): number[] => xs.map((v) => round(v));
      const roundsOf = {
        leaf_changed_status_rounds_ms: all(leaf.all), status_after_edit_rounds_ms: all(edit), run_after_status_rounds_ms: all(runAfterStatus.all),
        make_leaf_changed_rounds_ms: all(mk.leaf.all), make_leaf_run_rounds_ms: all(mk.leafRun),
        make_flat_leaf_changed_rounds_ms: all(mf.leaf.all), make_flat_leaf_run_rounds_ms: all(mf.leafRun),
      };
      process.stderr.write(`engine ${nodes}: ${JSON.stringify({ ...row, ...roundsOf })}\n`);
      results.push(row);
      roundsBySize.push(roundsOf);
    } finally {
      aside(ws);
    }
  }
  const at = (nodes: number): Record<string, number> | undefined => results.find((r) => r.nodes === nodes);
  const mid = at(20_002);
  const big = at(100_002);
  return {
    machine: { cores: jobs, node: process.version, ...nodeStarts(), calibration: { before, after: calibrate() } },
    sizes: results.map((r, i) => ({ ...r, ...roundsBySize[i] })),
    // Issue 26's targets.
    targets: mid ? { ...ratioTargets(mid, ''), status_after_edit_within_1s: mid.status_after_edit_ms! <= 1000, noop_rss_within_150mb: mid.noop_status_rss_mb! <= 150, noop_100k_within_2s: big ? big.noop_status_ms! <= 2000 : null } : null,
    // Its ratio targets against make on one directory of files, as they were judged before 2026-12-07.
    targets_against_make_flat: mid ? ratioTargets(mid, '_flat') : null,
  };
}
