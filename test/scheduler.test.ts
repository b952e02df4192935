import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeRecord } from '../src/cache/records.js';
import { buildGraph } from '../src/graph.js';
import type { NodeKeys, UpstreamInfo } from '../src/node-keys.js';
import type { ExecKey, PlanKey } from '../src/util/key-types.js';
import type { NodeDef } from '../src/pipeline/types.js';
import { servedBy, type Finished, type NodeRunner, type Outcome, type Placement } from '../src/execute/runner.js';
import { runGraph, type SchedulerOptions } from '../src/execute/scheduler.js';
import { DryRunner } from '../src/execute/dry-runner.js';

/*
 * The scheduler alone, in process: a runner of the test's own decides each node's fate, and a
 * run ends a turn of the event loop later (setImmediate), so runs overlap as real ones do. No
 * files, no processes, no sleeps.
 */

const loc = { file: 'dfwe.yaml', line: 1, col: 1 };
function node(id: string, refs: string[] = [], resources: Record<string, number> = {}): NodeDef {
  return {
    id, stage: id, vars: {}, members: 1, type: 'cmd', version: 0, command: `make ${id}`, params: {}, pipelineParams: {}, env: {}, deps: [],
    outs: { o: `out/${id}` }, metricsFiles: [], outKinds: { o: 'any' }, resources, executorOptions: {}, refs, refOuts: Object.fromEntries(refs.map((r) => [r, ['o']])),
    mlRuntime: false, commands: [], loc: { stage: loc, deps: [], outs: {}, commands: [] },
  } as NodeDef;
}

const record = (id: string, digest = `d-${id}`): NodeRecord => ({ planKey: `p-${id}`, execKey: `e-${id}`, nodeId: id, outputs: { o: { path: `out/${id}`, kind: 'file', digest, size: 1 } } }) as unknown as NodeRecord;

class FakeRunner implements NodeRunner {
  readonly cached = new Set<string>();
  readonly fail = new Set<string>();
  /** Output digest a node's run writes (default d-ID). */
  readonly writes = new Map<string, string>();
  readonly checked: { id: string; upstream: Record<string, string | undefined> }[] = [];
  readonly started: { id: string; placement: Placement }[] = [];
  readonly ended: string[] = [];
  running = 0;
  maxRunning = 0;
  onStart?: (id: string) => void;

  check(n: NodeDef, upstream: Map<string, UpstreamInfo>): { outcome?: Outcome; keys: NodeKeys } {
    this.checked.push({ id: n.id, upstream: Object.fromEntries(n.refs.map((r) => [r, upstream.get(r)?.outputs?.o])) });
    const keys = { planKey: `p-${n.id}` as PlanKey, execKey: `e-${n.id}` as ExecKey };
    return this.cached.has(n.id) ? { outcome: { status: 'cached', served: servedBy(record(n.id)), restored: false }, keys } : { keys };
  }

  restore(): Promise<Outcome | undefined> {
    throw new Error('no restores here');
  }

  run(n: NodeDef, _keys: NodeKeys, _up: Map<string, UpstreamInfo>, placement: Placement, processEnded: () => void): Promise<Outcome> {
    this.started.push({ id: n.id, placement });
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.onStart?.(n.id);
    return new Promise((resolve) =>
      setImmediate(() => {
        this.running--;
        this.ended.push(n.id);
        if (this.fail.has(n.id)) return resolve({ status: 'failed', kind: 'exit', error: `${n.id} broke`, logTail: '' });
        processEnded();
        resolve({ status: 'ran', record: record(n.id, this.writes.get(n.id)) });
      }),
    );
  }
}

function schedule(nodes: NodeDef[], runner: FakeRunner, opts: Partial<SchedulerOptions> = {}) {
  const finished = new Map<string, Finished>();
  const events = { started: () => {}, waiting: () => {}, progress: () => {}, finished: (id: string, o: Finished) => void finished.set(id, o) };
  return runGraph(buildGraph(nodes), runner, { jobs: 2, keepGoing: false, signal: new AbortController().signal, events, ...opts }).then((summary) => ({ summary, finished }));
}

test('scheduler: a node is keyed once, after its upstreams, with the output digests they produced', async () => {
  const r = new FakeRunner();
  r.writes.set('a', 'A1');
  const { summary } = await schedule([node('a'), node('b', ['a']), node('c', ['a']), node('d', ['b', 'c'])], r);
  assert.equal(summary.ran, 4);
  assert.deepEqual(r.checked.map((c) => c.id), ['a', 'b', 'c', 'd'], 'each node keyed exactly once');
  assert.deepEqual(r.checked.find((c) => c.id === 'b')!.upstream, { a: 'A1' }, "b is keyed on what a wrote");
  assert.deepEqual(r.checked.find((c) => c.id === 'd')!.upstream, { b: 'd-b', c: 'd-c' });
  for (const { id } of r.started) for (const up of node(id).refs) assert.ok(r.ended.indexOf(up) < r.ended.indexOf(id));
  assert.ok(r.ended.indexOf('a') < r.started.findIndex((s) => s.id === 'b'), 'b starts only once a has ended');
});

test('scheduler: at most --jobs nodes run at once, each in a job slot of its own', async () => {
  const r = new FakeRunner();
  const nodes = Array.from({ length: 12 }, (_, i) => node(`n${i}`));
  const { summary } = await schedule(nodes, r, { jobs: 3 });
  assert.equal(summary.ran, 12);
  assert.equal(r.maxRunning, 3);
  assert.deepEqual([...new Set(r.started.map((s) => s.placement.slot))].sort(), [0, 1, 2]);
  assert.deepEqual(r.started.map((s) => s.id), nodes.map((n) => n.id), 'started in pipeline order');
});

test('scheduler: gpu tokens bound what runs at once, and each holder gets devices no other holder has', async () => {
  const r = new FakeRunner();
  const devices: string[][] = [];
  let held: string[] = [];
  const run = r.run.bind(r);
  r.run = (n, k, u, p, e) => {
    const mine = p.gpus ?? [];
    assert.deepEqual(held.filter((d) => mine.includes(d)), [], `${n.id} shares no device with a running node`);
    if (mine.length) devices.push(mine);
    held = [...held, ...mine];
    // A stage's devices are free once its processes are gone (its commit may still be going on).
    return run(n, k, u, p, () => {
      held = held.filter((d) => !mine.includes(d));
      e();
    });
  };
  const nodes = [...Array.from({ length: 6 }, (_, i) => node(`g${i}`, [], { gpu: 1 })), node('cpu')];
  const { summary } = await schedule(nodes, r, { jobs: 8, capacity: { gpu: 2 }, gpus: ['A', 'B'] });
  assert.equal(summary.ran, 7);
  assert.equal(devices.length, 6);
  assert.ok(devices.every((d) => d.length === 1 && ['A', 'B'].includes(d[0]!)));
  assert.deepEqual(new Set(devices.flat()), new Set(['A', 'B']), 'both devices are used');
  assert.equal(r.started.find((s) => s.id === 'cpu')!.placement.gpus, undefined, 'a node without gpu tokens is given no device');
  assert.equal(r.maxRunning, 3, 'two gpu nodes and the cpu one at once');
});

test('scheduler: a failure skips what depends on it and stops new starts; --keep-going runs the rest', async () => {
  const nodes = [node('a'), node('b', ['a']), node('c', ['b']), node('x'), node('y', ['x'])];
  const stop = new FakeRunner();
  stop.fail.add('a');
  const stopped = await schedule(nodes, stop, { jobs: 1 });
  assert.deepEqual(stopped.summary.failed, ['a']);
  assert.equal((stopped.finished.get('b') as { reason: string }).reason, 'upstream a failed');
  assert.equal((stopped.finished.get('c') as { reason: string }).reason, 'upstream a failed');
  assert.deepEqual(stop.started.map((s) => s.id), ['a'], 'nothing new starts after a failure');
  assert.match((stopped.finished.get('y') as { reason: string }).reason, /stopped after a failure/);

  const going = new FakeRunner();
  going.fail.add('a');
  const kept = await schedule(nodes, going, { jobs: 1, keepGoing: true });
  assert.deepEqual(going.started.map((s) => s.id).sort(), ['a', 'x', 'y']);
  assert.equal(kept.summary.ran, 2);
  assert.equal(kept.summary.skipped, 2);
});

test('scheduler: cache hits complete inline, without a run, even down a chain of 20,000', async () => {
  const r = new FakeRunner();
  const nodes = Array.from({ length: 20_000 }, (_, i) => node(`n${i}`, i ? [`n${i - 1}`] : []));
  for (const n of nodes) r.cached.add(n.id);
  r.cached.delete('n19999');
  const { summary } = await schedule(nodes, r);
  assert.equal(summary.cached, 19_999);
  assert.deepEqual(r.started.map((s) => s.id), ['n19999']);
});

test('scheduler: an abort lets running nodes end and skips the rest as interrupted', async () => {
  const r = new FakeRunner();
  const controller = new AbortController();
  r.onStart = (id) => id === 'n1' && controller.abort();
  const { summary, finished } = await schedule(Array.from({ length: 6 }, (_, i) => node(`n${i}`)), r, { jobs: 2, signal: controller.signal });
  assert.equal(summary.interrupted, true);
  assert.deepEqual(r.started.map((s) => s.id), ['n0', 'n1']);
  assert.deepEqual(r.ended.sort(), ['n0', 'n1'], 'running nodes are waited for');
  for (const id of ['n2', 'n3', 'n4', 'n5']) assert.equal((finished.get(id) as { reason: string }).reason, 'interrupted');
});

test('dry runner: the scheduler places what the plan will run on a clock of last durations, and runs nothing', async () => {
  const planned = (id: string, state: 'run' | 'cached' = 'run') => [id, { state, reason: 'test', planKey: `p-${id}` as PlanKey, execKey: `e-${id}` as ExecKey }] as const;
  const plan = new Map([planned('a'), planned('b'), planned('c'), planned('d'), planned('e'), planned('x', 'cached'), planned('new')]);
  const last: Record<string, number> = { a: 1000, b: 500, c: 2000, d: 300, e: 100 };
  const dry = new DryRunner(plan, (id) => last[id]);
  const nodes = [node('a'), node('x'), ...['b', 'c', 'd'].map((id) => node(id, ['a'], { gpu: 1 })), node('e', ['b', 'c', 'd', 'x']), node('new', ['e'])];
  const summary = await runGraph(buildGraph(nodes), dry, { jobs: 4, keepGoing: true, capacity: { gpu: 2 }, gpus: ['A', 'B'], signal: new AbortController().signal, events: { started() {}, finished() {}, waiting() {}, progress() {} } });
  assert.equal(summary.cached, 1, 'a cached node is not started');
  assert.deepEqual(dry.result().starts, [
    { id: 'a', atMs: 0, slot: 0, lastMs: 1000 },
    { id: 'b', atMs: 1000, slot: 0, gpus: ['A'], lastMs: 500 },
    { id: 'c', atMs: 1000, slot: 1, gpus: ['B'], lastMs: 2000 },
    // Both GPUs are taken until b ends: d waits for its device, not for a job slot.
    { id: 'd', atMs: 1500, slot: 0, gpus: ['A'], lastMs: 300 },
    { id: 'e', atMs: 3000, slot: 0, lastMs: 100 },
    { id: 'new', atMs: 3100, slot: 0, lastMs: undefined },
  ]);
  assert.equal(dry.result().endMs, 3100);
});

test('scheduler: nodes served before the run are not keyed or run; what reads them is keyed with their outputs, and the summary counts them', async () => {
  const r = new FakeRunner();
  // A part of a pipeline (engine/part-run.ts): a and x served as the plan had them, b and c may run.
  const served = new Map([['a', { ...servedBy(record('a', 'A0')), record: undefined }], ['x', servedBy(record('x'))]]);
  const finished = new Map<string, Finished>();
  const events = { started: () => {}, waiting: () => {}, progress: () => {}, finished: (id: string, o: Finished) => void finished.set(id, o) };
  const graph = buildGraph([node('a'), node('b', ['a']), node('c', ['b'])], { boundary: new Set(['a']) });
  const summary = await runGraph(graph, r, { jobs: 2, keepGoing: false, signal: new AbortController().signal, events, served });
  assert.deepEqual(r.checked.map((c) => c.id), ['b', 'c'], 'a served node is not keyed');
  assert.deepEqual(r.checked[0]!.upstream, { a: 'A0' }, 'b is keyed on the outputs a was served with');
  assert.deepEqual(r.started.map((s) => s.id), ['b', 'c']);
  assert.deepEqual([summary.ran, summary.cached], [2, 2]);
  assert.deepEqual([...summary.served.keys()].sort(), ['a', 'b', 'c', 'x'], 'every node served, those before the run too');
  assert.deepEqual([...finished.keys()], ['b', 'c'], 'only what the run did is reported');
});
