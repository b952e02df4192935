import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzzPipelines } from '../bench/fuzz-pipelines.js';
import type { UserError } from '../src/diagnostics.js';
import { openProject } from '../src/project.js';
import { registry } from '../stages/index.js';
import { executors } from '../src/execute/executors/index.js';
import { workspace } from './helpers.js';

test('mutated example pipelines never crash dfwe: each is valid, or fails with located errors', async () => {
  // The short version; `npm run bench -- reliability` fuzzes 3,000.
  const s = await fuzzPipelines(500, 'fuzz-test');
  assert.equal(s.crashes + s.unlocated, 0, s.examples.join('\n\n'));
  assert.ok(s.valid > 0 && s.located > 0, JSON.stringify(s));
});

test('a YAML key that is a list or map is a located error, not a warning', () => {
  const ws = workspace();
  writeFileSync(join(ws, 'dfwe.yaml'), 'version: 1\nstages:\n  a:\n    cmd: echo\n    { x }: 1\n');
  return openProject({ workspace: ws, stageTypes: registry, executors }).then(
    () => assert.fail('accepted a collection key'),
    (err: UserError) => assert.ok(err.diagnostics.some((d) => /a key must be a plain name/.test(d.message) && d.location?.line === 5), err.message),
  );
});
