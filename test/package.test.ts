import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, workspace } from './helpers.js';

/*
 * dfwe installed into a project as a user would (issue 24): `npm pack` of this checkout, the
 * tarball installed into an empty directory, and the installed `dfwe` runs the embedded
 * quickstart and the PyTorch example there. The package holds the built code, the pipelines and
 * examples, and nothing a user does not run (tests, benchmarks, TypeScript sources, source maps).
 */

const PYTHON = process.env.DFWE_TORCH_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;

function sh(cmd: string, args: string[], cwd: string): { code: number; out: string; stdout: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, CI: 'true', npm_config_update_notifier: 'false' } });
  return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}`, stdout: r.stdout };
}

test('npm pack gives a package that installs into an empty project and runs the quickstart and the PyTorch example', { timeout: 600_000 }, () => {
  const dir = workspace();
  // The tests run on a built checkout; the pack must not build again under the other tests' feet.
  const pack = sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], REPO);
  assert.equal(pack.code, 0, pack.out);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  const paths = info!.files.map((f) => f.path);
  for (const needed of ['bin/dfwe.js', 'dist/src/cli.js', 'dist/stages/index.js', 'pipelines/quickstart.yaml', 'pipelines/torch.yaml', 'examples/torch/train.py', 'schemas/pipeline.schema.json']) {
    assert.ok(paths.includes(needed), `the package holds ${needed}`);
  }
  assert.deepEqual(paths.filter((p) => /^(test|bench|src|stages)\/|^dist\/(test|bench)\/|\.ts$|\.map$/.test(p)), [], 'nothing a user does not run');

  const project = join(dir, 'project');
  mkdirSync(project);
  const install = sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, info!.filename)], project);
  assert.equal(install.code, 0, install.out);
  const bin = join(project, 'node_modules/.bin/dfwe');
  assert.match(sh(bin, ['--version'], project).out, /^\d+\.\d+\.\d+/);

  // The embedded quickstart, from a directory with no pipeline of its own.
  const quick = sh(bin, ['run'], project);
  assert.equal(quick.code, 0, quick.out);
  assert.match(quick.out, /17 nodes: 17 ran/);
  assert.match(quick.out, /^\| emotion +\| +[\d.]+ \| +[\d.]+ \| +[+-][\d.]+ \|$/m);
  assert.deepEqual(readdirSync(project).sort(), ['cache', 'node_modules', 'out', 'package-lock.json', 'package.json']);

  // The PyTorch example, copied from the installed package as a user would start from it.
  if (!hasTorch && process.env.DFWE_TEST_TORCH !== 'required') return;
  const installed = join(project, 'node_modules/dfwe');
  mkdirSync(join(project, 'pipelines'));
  cpSync(join(installed, 'pipelines/torch.yaml'), join(project, 'pipelines/torch.yaml'));
  cpSync(join(installed, 'examples'), join(project, 'examples'), { recursive: true });
  const torch = sh(bin, ['run', 'pipelines/torch.yaml', '--param', `python=${PYTHON}`], project);
  assert.equal(torch.code, 0, torch.out);
  assert.match(torch.out, /17 nodes: 17 ran/);
  assert.match(torch.out, /^\| t0 +\| +[\d.]+ \| +[\d.]+ \| +[+-]?[\d.]+ \|$/m);
  assert.ok(existsSync(join(project, 'out/dfwe/model/model.safetensors')));
});
