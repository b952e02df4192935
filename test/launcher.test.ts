import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:https';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { baseEnv, BIN, dfwe, oneTensorModel, read, REPO, workspace } from './helpers.js';

/*
 * The installed command (bin/dfwe, a shell launcher) hands NODE_EXTRA_CA_CERTS over under another
 * name, so that Node does not parse the file as it starts; the processes dfwe starts see it as the
 * user set it, and a remote cache over TLS still trusts what it names (src/util/handed-env.ts).
 * Node says so when it parses the file at its start and cannot load it: a file that does not exist
 * shows which processes parsed it.
 */

const NODE_WARNS = /Ignoring extra certs from/;

/** The launcher as npm installs it: a relative symlink in a project's node_modules/.bin. */
function installedLink(): string {
  const bin = join(workspace(), 'node_modules', '.bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(relative(bin, join(REPO, 'bin', 'dfwe')), join(bin, 'dfwe'));
  return join(bin, 'dfwe');
}

/** A test's environment with neither the variable nor its handed-over name, then `extra`. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e = baseEnv();
  delete e.NODE_EXTRA_CA_CERTS;
  delete e.DFWE_NODE_EXTRA_CA_CERTS;
  return { ...e, ...extra };
}

test('the installed command starts without parsing NODE_EXTRA_CA_CERTS; a shell command and a built-in stage see it as the user set it', () => {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  shell:
    cmd: env | grep EXTRA_CA_CERTS | sort > \${{ outs.env }}
    outs: { env: out/env.txt }
  merged:
    uses: merge
    with: { models: [a.safetensors, b.safetensors] }
    outs: { model: out/merged }
`,
  });
  writeFileSync(join(ws, 'a.safetensors'), oneTensorModel([1, 2]));
  writeFileSync(join(ws, 'b.safetensors'), oneTensorModel([3, 4]));
  const bundle = join(ws, 'no-such-bundle.pem');

  // Node itself, started on the variable, parses the file (and warns that it cannot): the test can tell.
  const direct = spawnSync(process.execPath, [BIN, '--version'], { cwd: ws, env: env({ NODE_EXTRA_CA_CERTS: bundle }), encoding: 'utf8' });
  assert.match(direct.stderr, NODE_WARNS);

  const r = spawnSync(installedLink(), ['run'], { cwd: ws, env: env({ NODE_EXTRA_CA_CERTS: bundle }), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, NODE_WARNS, 'dfwe started without parsing the file');
  assert.equal(read(ws, 'out/env.txt'), `NODE_EXTRA_CA_CERTS=${bundle}\n`, 'the shell command sees the variable as it was set, and nothing of the handover');
  const log = dfwe(ws, ['logs', 'merged']);
  assert.equal(log.code, 0, log.stderr);
  assert.doesNotMatch(log.stdout, NODE_WARNS, "the built-in stage's process started without parsing the file");

  // Unset, it stays unset for the stages.
  const ws2 = workspace({ 'dfwe.yaml': `version: 1\nstages:\n  shell:\n    cmd: env | grep EXTRA_CA_CERTS > \${{ outs.env }} || true\n    outs: { env: out/env.txt }\n` });
  const r2 = spawnSync(installedLink(), ['run'], { cwd: ws2, env: env({}), encoding: 'utf8' });
  assert.equal(r2.status, 0, r2.stderr);
  assert.equal(read(ws2, 'out/env.txt'), '');
});

test('the launcher finds dfwe by a bare name and through a chain of relative symlinks', () => {
  const link = installedLink();
  const bin = join(link, '..');
  // Run as `sh dfwe` from its directory ($0 has no directory), as a PATH with an empty entry finds it.
  const bare = spawnSync('sh', ['dfwe', '--version'], { cwd: bin, env: env({}), encoding: 'utf8' });
  assert.equal(bare.status, 0, bare.stderr);
  assert.match(bare.stdout, /^\d+\.\d+\.\d+/);
  // A link to the link, in another directory.
  const other = join(workspace(), 'tools');
  mkdirSync(other);
  symlinkSync(relative(other, link), join(other, 'dfwe'));
  const chained = spawnSync(join(other, 'dfwe'), ['--version'], { env: env({}), encoding: 'utf8' });
  assert.equal(chained.status, 0, chained.stderr);
  assert.match(chained.stdout, /^\d+\.\d+\.\d+/);
});

test('a remote cache over TLS trusts the authority NODE_EXTRA_CA_CERTS names, handed over by the launcher', async () => {
  const tls = join(REPO, 'test', 'fixtures', 'tls');
  // An S3 endpoint whose certificate only the bundle vouches for; every object is absent.
  const server = createServer({ key: readFileSync(join(tls, 'key.pem')), cert: readFileSync(join(tls, 'cert.pem')) }, (_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const script = `
      const { S3Remote, parseS3Url } = await import(${JSON.stringify(join(REPO, 'dist/src/cache/s3-remote.js'))});
      const remote = await S3Remote.connect(parseS3Url('s3://bucket/prefix'), { endpoint: ${JSON.stringify(endpoint)}, credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
      try { console.log('head:', await remote.head('x')); } catch (err) { console.log('failed:', err.message); } finally { remote.close(); }`;
    const head = async (extra: Record<string, string>): Promise<string> => {
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: env(extra) });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((resolve) => child.on('close', resolve));
      return out.trim();
    };
    assert.equal(await head({ DFWE_NODE_EXTRA_CA_CERTS: join(tls, 'cert.pem') }), 'head: undefined', 'reached over TLS: the object is absent');
    assert.match(await head({}), /^failed: .*(self[- ]signed|certificate)/i, 'without the bundle the certificate is refused');
  } finally {
    server.close();
  }
});
