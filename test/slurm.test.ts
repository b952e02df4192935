import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpus, hostname } from 'node:os';
import { join } from 'node:path';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { batchScript, sbatchArgs, slurm } from '../src/execute/executors/slurm.js';
import { dfwe, dfweAsync, ran, read, REPO, workspace } from './helpers.js';

/*
 * Against a real Slurm: `.ci/run` starts a throwaway cluster (scripts/local-slurm.sh: nodes n1
 * and n2 on this machine) and sets DFWE_TEST_SLURM=required, so in CI these tests cannot be
 * skipped. Elsewhere they run when SLURM_CONF points at a cluster that answers.
 */
const clusterUp = spawnSync('sinfo', ['-h', '-o', '%P'], { encoding: 'utf8' }).status === 0;
const required = process.env.DFWE_TEST_SLURM === 'required';
if (required && !clusterUp) throw new Error('DFWE_TEST_SLURM=required but sinfo cannot reach a Slurm controller (is SLURM_CONF set?)');
const cluster = { skip: clusterUp ? false : 'no Slurm cluster (start one with scripts/local-slurm.sh)' } as const;

const SLURM = ['--executor', 'slurm'];

function allJobs(): string[] {
  return spawnSync('squeue', ['-h', '--states=all', '-o', '%i'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

function jobState(name: string): { id: string; state: string } | undefined {
  const out = spawnSync('squeue', ['-h', '--states=all', `--name=${name}`, '-o', '%i %T'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).pop();
  if (!out) return undefined;
  const [id, state] = out.split(' ');
  return { id: id!, state: state! };
}

async function until<T>(what: string, f: () => T | undefined, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('sbatch options come from the node resources and its Slurm settings', () => {
  const args = sbatchArgs({
    nodeId: 'train[task=a]', tag: '41.977.3', cwd: '/w', logPath: '/c/tmp/1.log', resources: { cpu: 4, gpu: 2, licence: 1 },
    options: { partition: 'gpu', time: '2:00:00', mem: '16G', options: ['--account=lab', '--qos=high'] },
  });
  assert.deepEqual(args, [
    '--parsable', '--job-name=dfwe:train[task=a]', '--comment=41.977.3', '--chdir=/w', '--output=/c/tmp/1.log', '--open-mode=append', '--export=ALL',
    '--cpus-per-task=4', '--gres=gpu:2', '--partition=gpu', '--time=2:00:00', '--mem=16G', '--account=lab', '--qos=high',
  ]);
  assert.equal(batchScript(['/usr/bin/node', "it's", 'a b']), `#!/bin/sh\nexec /usr/bin/node 'it'\\''s' 'a b'\n`);
});

test('pipeline Slurm settings reach every node; a stage overrides them and adds options', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
executor: slurm
slurm: { partition: cpu, time: "1:00:00", options: [--account=lab] }
stages:
  a: { cmd: "true" }
  b: { cmd: "true", slurm: { time: "4:00:00", mem: 2G, options: [--qos=long] } }
`,
  });
  const r = dfwe(ws, ['expand', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const nodes = JSON.parse(r.stdout).nodes as { id: string; slurm: object }[];
  const slurm = Object.fromEntries(nodes.map((n) => [n.id, n.slurm]));
  assert.deepEqual(slurm.a, { partition: 'cpu', time: '1:00:00', options: ['--account=lab'] });
  assert.deepEqual(slurm.b, { partition: 'cpu', time: '4:00:00', mem: '2G', options: ['--account=lab', '--qos=long'] });
  const bad = workspace({ 'dfwe.yaml': 'version: 1\nslurm: { partition: 3, options: [account=lab] }\nstages:\n  a: { cmd: "true" }\n' });
  const e = dfwe(bad, ['status']);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /dfwe\.yaml:2:\d+/);
});

test('a reduced DFWE pipeline under Slurm: the same keys and bit-identical outputs as the local executor; a rerun submits nothing', cluster, () => {
  const yaml = read(REPO, 'pipelines/quickstart.yaml')
    .replace('sources: [sentiment, speaker, topic]', 'sources: [sentiment]')
    .replace('scenes: 1500', 'scenes: 300').replace('train: 400', 'train: 60').replace('dev: 200', 'dev: 40').replace('test: 400', 'test: 40')
    .replace('{params.target: 100}', '{params.target: 30}')
    .replaceAll('epochs: 4', 'epochs: 1').replaceAll('epochs: 6', 'epochs: 1')
    .replace('optimizer: ${{ params.optimizer }}', 'optimizer: ${{ params.optimizer }}\n      max_evals: 8');
  const local = workspace({ 'dfwe.yaml': yaml });
  const slurm = workspace({ 'dfwe.yaml': yaml });
  const l = dfwe(local, ['run', '--jobs', '2']);
  assert.equal(l.code, 0, l.stderr);
  const s = dfwe(slurm, ['run', ...SLURM, '--jobs', '4']);
  assert.equal(s.code, 0, s.stderr);
  assert.deepEqual(ran(s), ran(l));
  const records = (ws: string) => (JSON.parse(dfwe(ws, ['status', '--json']).stdout).nodes as { id: string; execKey: string }[]).map((n) => [n.id, n.execKey]);
  assert.deepEqual(records(slurm), records(local), 'node keys');
  for (const [id] of records(local)) {
    const outs = (ws: string) => {
      const o = JSON.parse(dfwe(ws, ['show', id!, '--json']).stdout).record.outputs;
      // The search trace holds each evaluation's wall time, by design; the merged model is exact.
      if (id === 'interpolate') delete o.search;
      return o;
    };
    assert.deepEqual(outs(slurm), outs(local), `${id}: output digests`);
  }
  const hosts = new Set((JSON.parse(dfwe(slurm, ['show', 'interpolate', '--json']).stdout).record.host as string).split(','));
  assert.ok(hosts.has('n1') || hosts.has('n2'), `ran on a Slurm node, not ${[...hosts]}`);

  const before = allJobs().length;
  const again = dfwe(slurm, ['run', ...SLURM]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(ran(again), []);
  assert.equal(allJobs().length, before, 'a cached rerun submits no job');
});

test('a failing job fails its node with the job log shown, and its dependants are skipped', cluster, () => {
  const ws = workspace({
    'dfwe.yaml': 'version: 1\nstages:\n  bad: { cmd: "echo about to fail-7f3a >&2; exit 3", outs: { x: out/x } }\n  after: { cmd: "cat ${{ stages.bad.outs.x }}" }\n',
  });
  const r = dfwe(ws, ['run', ...SLURM]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad.*exit code 3/);
  assert.match(r.stderr, /about to fail-7f3a/);
  assert.match(r.stderr, /after.*skipped|skipped.*after/s);
});

test('a job cancelled from outside (scancel) is a failed node; Ctrl-C cancels the jobs of the run', cluster, async () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  long: { cmd: "sleep 60" }\n' });
  const run = dfweAsync(ws, ['run', ...SLURM]);
  const job = await until('the job to run', () => (jobState('dfwe:long')?.state === 'RUNNING' ? jobState('dfwe:long') : undefined));
  spawnSync('scancel', [job.id]);
  const r = await run.done;
  assert.equal(r.code, 1, run.output());
  assert.match(r.stderr, new RegExp(`long.*Slurm job ${job.id} ended CANCELLED`));

  const ws2 = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  long2: { cmd: "sleep 60" }\n' });
  const run2 = dfweAsync(ws2, ['run', ...SLURM]);
  const job2 = await until('the job to run', () => (jobState('dfwe:long2')?.state === 'RUNNING' ? jobState('dfwe:long2') : undefined));
  run2.child.kill('SIGINT');
  const r2 = await run2.done;
  assert.equal(r2.code, 130, run2.output());
  assert.equal(jobState('dfwe:long2')?.state, 'CANCELLED', `job ${job2.id} was not cancelled`);
});

test('independent nodes run on both Slurm nodes; each record names its host', cluster, () => {
  // Each job asks for every cpu of a node, so two at once cannot share one.
  const n = cpus().length;
  const stage = (name: string) => `  ${name}: { cmd: "sleep 1; echo $SLURMD_NODENAME > \${{ outs.host }}", outs: { host: out/${name} }, resources: { cpu: ${n} } }\n`;
  const ws = workspace({ 'dfwe.yaml': `version: 1\nstages:\n${stage('left')}${stage('right')}` });
  const r = dfwe(ws, ['run', ...SLURM, '--jobs', '2']);
  assert.equal(r.code, 0, r.stderr);
  const hosts = ['left', 'right'].map((s) => JSON.parse(dfwe(ws, ['show', s, '--json']).stdout).record.host as string);
  assert.deepEqual(hosts.sort(), ['n1', 'n2']);
  assert.deepEqual(['left', 'right'].map((s) => read(ws, join('out', s)).trim()).sort(), ['n1', 'n2']);
});

test('--executor slurm without a reachable controller is an input error that says why; nothing runs', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a: { cmd: "echo ran > ${{ outs.f }}", outs: { f: out/a } }\n' });
  const r = dfwe(ws, ['run', ...SLURM], { SLURM_CONF: join(ws, 'no-such-slurm.conf') });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--executor slurm: cannot reach a Slurm controller: /);
  assert.deepEqual(ran(r), []);
  assert.equal(dfwe(ws, ['run', '--executor', 'pbs']).code, 2);
});

test('a workspace path holding % (which sbatch would expand in --output) runs its jobs (issue 23, repro 16)', () => {
  assert.ok(sbatchArgs({ nodeId: 'a', tag: '1.2.3', cwd: '/w%j', logPath: '/w%j/cache/tmp/run-1/0.log', resources: {}, options: {} }).includes('--output=/w%%j/cache/tmp/run-1/0.log'));
});

test('a job of a workspace whose path holds % succeeds, its log where dfwe reads it', cluster, () => {
  const ws = join(workspace(), 'w%j%x 100%');
  mkdirSync(ws);
  writeFileSync(join(ws, 'dfwe.yaml'), 'version: 1\nstages:\n  a: { cmd: "echo from-slurm-9c1e; echo ok > out.txt", outs: { o: out.txt } }\n');
  const r = dfwe(ws, ['run', ...SLURM, '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(read(ws, 'out.txt'), 'ok\n');
});

test('an engine killed while sbatch ran (the job id never reached its lease): the next run stops that job before it runs the node', cluster, async () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  s:\n    cmd: echo $$ > pid.txt; sleep ${SLOW:-0}; echo done > ${{ outs.f }}\n    outs: { f: out/s }\n' });
  // An sbatch that submits, then never returns: the engine is killed before it hears the job id.
  const bin = join(ws, 'bin');
  mkdirSync(bin);
  const real = spawnSync('sh', ['-c', 'command -v sbatch'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(join(bin, 'sbatch'), `#!/bin/sh\n'${real}' "$@" > '${join(ws, 'submitted')}'\nexec sleep 600\n`, { mode: 0o755 });
  const run = dfweAsync(ws, ['run', ...SLURM], { PATH: `${bin}:${process.env.PATH}`, SLOW: '600' });
  const id = await until('the job to be submitted', () => { try { return read(ws, 'submitted').trim() || undefined; } catch { return undefined; } });
  const orphan = await until('the job to run', () => { try { return Number(read(ws, 'pid.txt')) || undefined; } catch { return undefined; } });
  run.child.kill('SIGKILL');
  await run.done;
  spawnSync('pkill', ['-f', `${bin}/sbatch`]);
  const state = (): string => spawnSync('squeue', ['-h', '--states=all', '-j', id, '-o', '%T'], { encoding: 'utf8' }).stdout.trim();
  assert.equal(state(), 'RUNNING', 'the job outlived its engine');
  const again = dfwe(ws, ['run', ...SLURM], { SLOW: '0' });
  assert.equal(again.code, 0, again.stderr);
  // Stopped by scancel, or (this cluster's nodes are this machine) killed here by its launch tag first.
  assert.match(state(), /^(CANCELLED|FAILED|COMPLETING)?$/);
  assert.equal(existsSync(`/proc/${orphan}`) && !readFileSync(`/proc/${orphan}/stat`, 'utf8').includes(') Z'), false, 'its process is gone');
  assert.equal(read(ws, 'out/s'), 'done\n');
});

test('stopRun cancels the Slurm jobs of a dead run by their launch tags, and no one else\'s', cluster, async () => {
  const submit = (comment: string): string => spawnSync('sbatch', ['--parsable', `--comment=${comment}`, '--output=/dev/null', '--wrap', 'sleep 600'], { encoding: 'utf8' }).stdout.trim().split(';')[0]!;
  const dead = submit('999999.123.4');
  const other = submit('999999.1234.0');
  try {
    slurm.stopRun('999999.123.', hostname());
    const state = (id: string): string => spawnSync('squeue', ['-h', '--states=all', '-j', id, '-o', '%T'], { encoding: 'utf8' }).stdout.trim();
    await until('the dead run\'s job to be cancelled', () => /^(CANCELLED)?$/.test(state(dead)) || undefined, 10_000);
    assert.match(state(other), /PENDING|CONFIGURING|RUNNING/, 'a job of another run is left alone');
  } finally {
    spawnSync('scancel', [dead, other]);
  }
});
