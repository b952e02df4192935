import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dfweTraced, workspace } from './helpers.js';

function loaded(ws: string, args: string[]): string[] {
  const r = dfweTraced(ws, args);
  assert.equal(r.code, 0, r.stderr);
  return r.modules;
}

/**
 * Training, data loading, tfjs, checkpoints and the merge engine: what only running a stage
 * needs. (Keys name the tfjs version, read from its package.json; the task names and the stages'
 * shared schema parts are data.)
 */
const STAGE_CODE = /@tensorflow\/(?![^/]+\/package\.json$)|csv-parse|\/dist\/src\/ml\/(?!runtime\.js$|random\.js$|data\/task-names\.js$|schema-parts\.js$)|\/dist\/src\/merge\/engine|\/dist\/src\/checkpoint\//;
const PARSING = /\/node_modules\/(yaml|ajv)\//;

test('planning loads no stage implementation; a memoised plan loads neither the YAML parser nor the validator', () => {
  const cmd = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo hi > ${{ outs.f }}\n    outs: { f: out/a }\n' });
  const ml = workspace(); // the embedded quickstart: every built-in ML stage
  for (const ws of [cmd, ml]) {
    const first = loaded(ws, ['status']);
    assert.ok(first.some((f) => PARSING.test(f)), 'the trace sees the parser when it is used');
    assert.deepEqual(first.filter((f) => STAGE_CODE.test(f)), []);
    const memoised = loaded(ws, ['status']);
    assert.deepEqual(memoised.filter((f) => STAGE_CODE.test(f) || PARSING.test(f)), []);
  }
});

test("an edited pipeline of the built-in stage types is checked by the validator the build compiled: ajv's compiler is not loaded", () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo hi > ${{ outs.f }}\n    outs: { f: out/a }\n' });
  const modules = loaded(ws, ['status']);
  assert.ok(modules.some((f) => /\/node_modules\/yaml\//.test(f)), 'the file was parsed');
  assert.ok(modules.some((f) => /\/dist\/src\/pipeline\/pipeline-validator\.cjs$/.test(f)), 'the precompiled validator was used');
  assert.deepEqual(modules.filter((f) => /\/node_modules\/ajv\/dist\/(core|compile)\//.test(f)), []);
});
