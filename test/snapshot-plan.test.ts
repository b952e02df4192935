import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { executors } from '../src/execute/executors/index.js';
import { planAll, type Decision } from '../src/engine/plan.js';
import { locateProject, openProject, runtimeFor, type ProjectOptions } from '../src/project.js';
import { checkSnapshot } from '../src/engine/snapshot.js';
import { planFromSnapshot } from '../src/engine/snapshot-plan.js';
import { registry } from '../stages/index.js';
import { dfwe, workspace } from './helpers.js';

const PIPELINE = `version: 1
stages:
  prep:
    cmd: cat src/base.txt > \${{ outs.p }}
    deps: [src/base.txt]
    outs: { p: out/prep }
  ex:
    foreach: { i: [0, 1, 2] }
    cmd: cat \${{ stages.prep.outs.p }} src/d\${{ i }}.txt > \${{ outs.e }}
    deps: ["src/d\${{ i }}.txt"]
    outs: { e: ~ }
  ft:
    foreach: { i: [0, 1, 2] }
    cmd: cat \${{ stages.ex.outs.e }} > \${{ outs.f }}
    outs: { f: ~ }
  agg:
    deps: ["\${{ stages.ft.outs.f }}", data]
    cmd: cat out/ft/*/f > \${{ outs.a }}
    outs: { a: out/agg }
`;

const OLD = new Date(Date.now() - 3600_000);

function ranOnce(): string {
  const ws = workspace({ 'dfwe.yaml': PIPELINE, 'src/base.txt': 'base\n', 'src/d0.txt': '0\n', 'src/d1.txt': '1\n', 'src/d2.txt': '2\n', 'data/x.txt': 'x\n' });
  for (const p of ['src/base.txt', 'src/d0.txt', 'src/d1.txt', 'src/d2.txt', 'data/x.txt', 'data', 'src']) utimesSync(join(ws, p), OLD, OLD);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  return ws;
}

const options = (ws: string): ProjectOptions => ({ workspace: ws, stageTypes: registry, executors });
const comparable = (ds: Decision[]) => ds.map((d) => ({ id: d.id, state: d.state, reason: d.reason, planKey: d.planKey, execKey: d.execKey ?? null, changes: d.changes ?? [] }));

/** The plan from the snapshot (undefined if it says "plan in full"), and the full plan. */
async function bothPlans(ws: string) {
  const loc = locateProject(options(ws));
  const check = checkSnapshot(loc, (b) => runtimeFor(b));
  assert.ok(check, 'the snapshot is usable: only sources changed');
  const fromSnapshot = planFromSnapshot(check, loc);
  const full = planAll(await openProject(options(ws)));
  return { fromSnapshot: fromSnapshot && comparable(fromSnapshot), full: comparable(full), dirty: check.dirty.length };
}

test('only sources changed: the plan from the snapshot is the full plan, node for node (states, reasons, keys)', async () => {
  const cases: [string, (ws: string) => void, string[]][] = [
    ['a leaf source edited', (ws) => appendFileSync(join(ws, 'src/d1.txt'), 'more\n'), ['ex[i=1]', 'ft[i=1]', 'agg']],
    ['a source touched, its content the same', (ws) => utimesSync(join(ws, 'src/d1.txt'), new Date(), new Date(Date.now() - 5000)), []],
    ['the source at the root edited', (ws) => writeFileSync(join(ws, 'src/base.txt'), 'other\n'), ['prep', 'ex[i=0]', 'ex[i=1]', 'ex[i=2]', 'ft[i=0]', 'ft[i=1]', 'ft[i=2]', 'agg']],
    ['a file added to a directory dep', (ws) => writeFileSync(join(ws, 'data/y.txt'), 'y\n'), ['agg']],
  ];
  for (const [what, change, willRun] of cases) {
    const ws = ranOnce();
    change(ws);
    const { fromSnapshot, full, dirty } = await bothPlans(ws);
    assert.ok(dirty > 0, `${what}: the snapshot saw the change`);
    assert.ok(fromSnapshot, `${what}: planned from the snapshot`);
    assert.deepEqual(fromSnapshot, full, what);
    assert.deepEqual(full.filter((d) => d.state !== 'cached').map((d) => d.id), willRun, what);
  }
});

test('what the snapshot cannot decide exactly goes to the full plan: a source gone, a new key already cached', async () => {
  const gone = ranOnce();
  rmSync(join(gone, 'src/d2.txt'));
  const loc = locateProject(options(gone));
  assert.equal(planFromSnapshot(checkSnapshot(loc, (b) => runtimeFor(b))!, loc), undefined);
  assert.equal(dfwe(gone, ['status']).code, 2);

  // Edited, run, edited back: the old key has its record, so its outputs may differ from the snapshot's.
  const back = ranOnce();
  const before = readFileSync(join(back, 'src/d1.txt'), 'utf8');
  appendFileSync(join(back, 'src/d1.txt'), 'more\n');
  assert.equal(dfwe(back, ['run']).code, 0);
  utimesSync(join(back, 'src/d1.txt'), OLD, OLD);
  assert.equal(dfwe(back, ['status']).code, 0); // writes the snapshot of the edited state
  writeFileSync(join(back, 'src/d1.txt'), before);
  utimesSync(join(back, 'src/d1.txt'), OLD, new Date(OLD.getTime() + 1000));
  const { fromSnapshot, full } = await bothPlans(back);
  assert.equal(fromSnapshot, undefined);
  assert.deepEqual(full.filter((d) => d.state !== 'cached').map((d) => d.id), []);
});
