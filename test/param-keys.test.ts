import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paramsAt } from '../src/pipeline/scopes.js';
import { dfwe, ran, workspace, write } from './helpers.js';

/*
 * Keys as precise as the reads (issue 24): a node's key covers the param entries its
 * expressions read, so a map of per-expert settings read one entry per instance re-keys only
 * the instance whose entry changed.
 */

const pipeline = (lrFor: string, extra = ''): string => `version: 1
params:
  lr_for: ${lrFor}
  experts: [a, b, c]
stages:
  expert:
    foreach: { e: "\${{ params.experts }}" }
    cmd: >-
      echo \${{ e }} \${{ e in params.lr_for ? params.lr_for[e] : 0.5 }} > \${{ outs.o }}
    outs: { o: ~ }
${extra}`;

test('editing one entry of a param map re-keys only the instance that reads it; adding an entry re-keys only the one that looked for it', () => {
  const ws = workspace({ 'dfwe.yaml': pipeline('{ a: 0.1, b: 0.2 }') });
  assert.deepEqual(ran(dfwe(ws, ['run'])).length, 3);
  write(ws, 'dfwe.yaml', pipeline('{ a: 0.1, b: 0.3 }'));
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['expert[e=b]']);
  assert.match(dfwe(ws, ['why', 'expert[e=b]']).stdout, /cached/);
  // c looked for its entry and found none: adding it re-keys c alone.
  write(ws, 'dfwe.yaml', pipeline('{ a: 0.1, b: 0.3, c: 0.7 }'));
  const added = dfwe(ws, ['status']);
  assert.match(added.stdout, /will run +expert\[e=c\] +param lr_for changed/);
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['expert[e=c]']);
});

test('a stage that reads a param map as a whole is re-keyed by any change to it', () => {
  const whole = '  count:\n    cmd: echo ${{ size(params.lr_for) }} > ${{ outs.o }}\n    outs: { o: ~ }\n';
  const ws = workspace({ 'dfwe.yaml': pipeline('{ a: 0.1, b: 0.2 }', whole) });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'dfwe.yaml', pipeline('{ a: 0.1, b: 0.2, z: 1 }', whole));
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['count']);
});

test('paramsAt keeps the entries read: whole where read whole, by key where read by key, absent marked', () => {
  const params = { lr: 0.1, m: { a: 1, b: { x: 2, y: 3 } }, list: [1, 2] };
  assert.deepEqual(JSON.parse(JSON.stringify(paramsAt(params, [['m', 'b', 'x'], ['lr']]))), { lr: 0.1, m: { b: { x: 2 } } });
  assert.deepEqual(JSON.parse(JSON.stringify(paramsAt(params, [['m', 'b', 'x'], ['m']]))), { m: params.m });
  assert.deepEqual(JSON.parse(JSON.stringify(paramsAt(params, [['list'], ['m', 'q']]))), { list: [1, 2], m: { q: { '\u0000': 'absent' } } });
  assert.deepEqual(paramsAt(params, [[]]), params);
});

test("why says one edit once: a param that reaches `with` is not also a `with` change; another `with` change still is", async () => {
  const { diffFingerprints } = await import('../src/keys/fingerprint.js');
  const fp = (optimizer: string, seed: number) => ({ format: 2, type: 'merge-search', version: 1, params: { optimizer, seed }, pipelineParams: { optimizer }, env: {}, deps: {}, outs: {}, upstream: {} });
  assert.deepEqual(diffFingerprints(fp('nelder-mead', 0), fp('uniform', 0)).map((c) => c.what), ['param optimizer']);
  assert.deepEqual(diffFingerprints(fp('nelder-mead', 0), fp('uniform', 1)).map((c) => c.what), ['param optimizer', 'with seed']);
});
