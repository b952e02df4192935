import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executors } from '../src/execute/executors/index.js';
import { planAll, type Decision } from '../src/engine/plan.js';
import { locateProject, openProject, runtimeFor, type ProjectOptions } from '../src/project.js';
import { checkSnapshot, priorResults, readSnapshot } from '../src/engine/snapshot.js';
import { planFromSnapshot } from '../src/engine/snapshot-plan.js';
import { withReasonWhenAsked } from '../src/engine/reasons.js';
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

/** The plan with the snapshot written before the edit as its prior, the full plan, and how many nodes the prior decided. */
async function editedPlans(ws: string) {
  const loc = locateProject(options(ws));
  const snap = readSnapshot(loc, (b) => runtimeFor(b));
  assert.ok(snap && snap.expansionKey !== loc.expansionKey, 'a snapshot of the pipeline before the edit');
  const prior = priorResults(loc, snap);
  assert.ok(prior, 'no output, directory or record changed: the prior snapshot can be used');
  const project = await openProject(options(ws));
  const withPrior = planAll(project, { prior });
  return { withPrior: comparable(withPrior), full: comparable(planAll(project)), fromPrior: withPrior.filter((d) => d.prior).length };
}

test('the pipeline edited: what the snapshot before it vouches for decides those nodes, and the plan is the full plan', async () => {
  const edit = (from: string, to: string) => (ws: string) => writeFileSync(join(ws, 'dfwe.yaml'), readFileSync(join(ws, 'dfwe.yaml'), 'utf8').replace(from, to));
  const cases: [string, (ws: string) => void, string[], number][] = [
    ['a comment added', (ws) => appendFileSync(join(ws, 'dfwe.yaml'), '# a note\n'), [], 8],
    ["the aggregate's command edited", edit('cat out/ft/*/f >', 'cat out/ft/*/f  >'), ['agg'], 7],
    ['a stage in the middle edited', edit('cat ${{ stages.ex.outs.e }} >', 'cat ${{ stages.ex.outs.e }}  >'), ['ft[i=0]', 'ft[i=1]', 'ft[i=2]', 'agg'], 4],
    ['a source edited too', (ws) => (appendFileSync(join(ws, 'dfwe.yaml'), '# a note\n'), appendFileSync(join(ws, 'src/d1.txt'), 'more\n')), ['ex[i=1]', 'ft[i=1]', 'agg'], 5],
  ];
  for (const [what, change, willRun, fromPrior] of cases) {
    const ws = ranOnce();
    assert.equal(dfwe(ws, ['status']).code, 0);
    change(ws);
    const plans = await editedPlans(ws);
    assert.deepEqual(plans.withPrior, plans.full, what);
    assert.deepEqual(plans.full.filter((d) => d.state !== 'cached').map((d) => d.id), willRun, what);
    assert.equal(plans.fromPrior, fromPrior, `${what}: nodes the prior snapshot decided`);
  }
  // Everything as the snapshot had it: status writes it again for the edited pipeline, without a record read.
  const ws = ranOnce();
  appendFileSync(join(ws, 'dfwe.yaml'), '# a note\n');
  assert.match(dfwe(ws, ['status']).stdout, /8 nodes: 8 cached/);
  const loc = locateProject(options(ws));
  assert.deepEqual(checkSnapshot(loc, (b) => runtimeFor(b))?.dirty, [], 'the next no-op is told from the snapshot');
});

test('an edit that changes only which output of an upstream node a node reads: it runs, though its plan key is the same', async () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  two:
    cmd: echo a > \${{ outs.a }} && echo b > \${{ outs.b }}
    outs: { a: out/two/a, b: out/two/b }
  read:
    deps: [out/two/a]
    cmd: cat out/two/* > \${{ outs.r }}
    outs: { r: out/read }
`,
  });
  assert.equal(dfwe(ws, ['run']).code, 0);
  assert.equal(dfwe(ws, ['status']).code, 0);
  writeFileSync(join(ws, 'dfwe.yaml'), readFileSync(join(ws, 'dfwe.yaml'), 'utf8').replace('deps: [out/two/a]', 'deps: [out/two/b]'));
  const plans = await editedPlans(ws);
  assert.equal(plans.full.find((d) => d.id === 'read')!.planKey, plans.withPrior.find((d) => d.id === 'read')!.planKey);
  assert.deepEqual(plans.withPrior, plans.full);
  assert.deepEqual(plans.full.filter((d) => d.state !== 'cached').map((d) => d.id), ['read']);
  assert.match(dfwe(ws, ['status']).stdout, /will run +read/);
});

test('after an edit, outputs the prior snapshot does not vouch for are checked as in the full plan: one a symlink leads outside is a located error', async () => {
  const errorOf = (plan: () => unknown): string => {
    try {
      plan();
    } catch (err) {
      return (err as Error).message;
    }
    return 'no error';
  };
  const elsewhere = mkdtempSync(join(tmpdir(), 'dfwe-elsewhere-'));
  const cases: [string, (ws: string) => void][] = [
    ['a new stage writing through the link', (ws) => appendFileSync(join(ws, 'dfwe.yaml'), '  new:\n    cmd: echo x > ${{ outs.n }}\n    outs: { n: link/n }\n')],
    ["an existing stage's output moved there", (ws) => writeFileSync(join(ws, 'dfwe.yaml'), readFileSync(join(ws, 'dfwe.yaml'), 'utf8').replace('outs: { a: out/agg }', 'outs: { a: link/agg }'))],
  ];
  for (const [what, change] of cases) {
    const ws = ranOnce();
    symlinkSync(elsewhere, join(ws, 'link'));
    assert.equal(dfwe(ws, ['status']).code, 0); // the snapshot sees the link
    change(ws);
    const loc = locateProject(options(ws));
    const prior = priorResults(loc, readSnapshot(loc, (b) => runtimeFor(b))!);
    assert.ok(prior, what);
    const project = await openProject(options(ws));
    const withPrior = errorOf(() => planAll(project, { prior }));
    assert.match(withPrior, /outside the workspace/, what);
    assert.equal(withPrior, errorOf(() => planAll(project)), what);
    const s = dfwe(ws, ['status']);
    assert.equal(s.code, 2, `${what}: ${s.stdout}`);
    assert.match(s.stderr, /dfwe\.yaml:\d+:\d+/, what);
  }
  assert.deepEqual(readdirSync(elsewhere), [], 'nothing was written outside');
});

test('a reason is worked out when first read, once, and can be said otherwise (status: "cached remotely")', () => {
  let asked = 0;
  const d = withReasonWhenAsked({ id: 'n', state: 'run' as const }, () => {
    asked++;
    return { reason: 'command changed', changes: [] };
  });
  assert.equal(asked, 0, 'not worked out before it is read');
  assert.equal(d.reason, 'command changed');
  assert.deepEqual(JSON.parse(JSON.stringify(d)), { id: 'n', state: 'run', reason: 'command changed', changes: [] });
  assert.equal(asked, 1, 'worked out once');
  d.reason = 'cached remotely (a run downloads it)';
  assert.equal(d.reason, 'cached remotely (a run downloads it)');
  const unread = withReasonWhenAsked({ id: 'm' }, () => {
    asked++;
    return { reason: 'never run' };
  });
  unread.reason = 'said otherwise';
  assert.equal(unread.reason, 'said otherwise');
  assert.equal(asked, 1, 'a reason said otherwise before it was read is never worked out');
});
