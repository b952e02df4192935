import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../src/diagnostics.js';
import { Rng } from '../src/ml/random.js';
import { planAll } from '../src/plan.js';
import { openProject } from '../src/project.js';
import { REPO } from './helpers.js';

test('mutated example pipelines never crash dfwe: each is valid, or fails with located errors', async () => {
  const sources = ['quickstart', 'sweep', 'friends'].map((n) => readFileSync(join(REPO, `pipelines/${n}.yaml`), 'utf8'));
  const pieces = ['${{', '}}', ':', ' ', '\n', '-', '[', ']', '{', '}', '"', "'", '#', '&a', '*a', 'stages.', 'params.', '~', '!!', '\t', '0', 'x'];
  const rng = new Rng('fuzz-test');
  const ws = mkdtempSync(join(tmpdir(), 'dfwe-fuzz-'));
  const counts = { valid: 0, located: 0 };
  for (let i = 0; i < 500; i++) {
    let text = rng.pick(sources);
    for (let k = 0, n = 1 + rng.int(3); k < n; k++) {
      const at = rng.int(text.length);
      const lines = text.split('\n');
      switch (rng.int(4)) {
        case 0: text = text.slice(0, at) + text.slice(at + 1 + rng.int(5)); break;
        case 1: text = text.slice(0, at) + rng.pick(pieces) + text.slice(at); break;
        case 2: lines.splice(rng.int(lines.length), 0, lines[rng.int(lines.length)]!); text = lines.join('\n'); break;
        default: lines.splice(rng.int(lines.length), 1); text = lines.join('\n');
      }
    }
    writeFileSync(join(ws, 'dfwe.yaml'), text);
    rmSync(join(ws, 'cache'), { recursive: true, force: true });
    try {
      planAll(await openProject({ workspace: ws }));
      counts.valid++;
    } catch (err) {
      assert.ok(err instanceof UserError, `input ${i} crashed dfwe:\n${(err as Error).stack}\n--- input ---\n${text}`);
      assert.ok(err.diagnostics.every((d) => d.location), `input ${i}: an error without a location: ${err.message}`);
      counts.located++;
    }
  }
  assert.ok(counts.valid > 0 && counts.located > 0, JSON.stringify(counts));
});

test('a YAML key that is a list or map is a located error, not a warning', () => {
  const ws = mkdtempSync(join(tmpdir(), 'dfwe-key-'));
  writeFileSync(join(ws, 'dfwe.yaml'), 'version: 1\nstages:\n  a:\n    cmd: echo\n    { x }: 1\n');
  return openProject({ workspace: ws }).then(
    () => assert.fail('accepted a collection key'),
    (err: UserError) => assert.ok(err.diagnostics.some((d) => /a key must be a plain name/.test(d.message) && d.location?.line === 5), err.message),
  );
});
