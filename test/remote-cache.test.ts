import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { recordKeys } from '../src/cache/cache.js';
import { GroupCommit } from '../src/cache/group-commit.js';
import { objectsOf, readRecord, type NodeRecord } from '../src/cache/records.js';
import { RemoteCache, sealEnvelope, type RemoteTrust } from '../src/cache/remote-cache.js';
import { parseS3Url, S3Remote } from '../src/cache/s3-remote.js';
import { CacheStore } from '../src/cache/store.js';
import type { ExecKey } from '../src/util/key-types.js';
import { dfwe, dfweAsync, ran, read, REPO, workspace } from './helpers.js';

/*
 * The shared cache's Cache implementation against a real S3-compatible server (see
 * s3-remote.test.ts for how one is found; CI starts scripts/local-s3.sh and requires it).
 */
const bucket = process.env.DFWE_TEST_S3_BUCKET;
const server = { skip: bucket && process.env.AWS_ENDPOINT_URL ? false : 'no S3 server (start one with scripts/local-s3.sh)' } as const;
if (server.skip && process.env.DFWE_TEST_S3 === 'required') throw new Error('DFWE_TEST_S3=required but no S3 server is configured');

const KEY = Buffer.from('the team signing key');

/** A cache holding the results of a pipeline with a file output and a directory output with an executable in it. */
function ranCache(): { store: CacheStore; records: NodeRecord[] } {
  const ws = workspace({
    'dfwe.yaml': `version: 1
stages:
  model:
    cmd: mkdir -p \${{ outs.d }} && echo weights > \${{ outs.d }}/w.bin && printf '#!/bin/sh\\necho hi\\n' > \${{ outs.d }}/run.sh && chmod +x \${{ outs.d }}/run.sh
    outs: { d: out/model }
  score:
    cmd: cat \${{ stages.model.outs.d }}/w.bin | wc -c > \${{ outs.f }}
    outs: { f: out/score }
`,
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const store = new CacheStore(join(ws, 'cache'));
  const records = [...recordKeys(store)].map((k) => readRecord(store, k)!);
  assert.equal(records.length, 2);
  return { store, records };
}

/** A remote cache on a prefix of its own, for a store, with warnings collected. */
async function remoteFor(store: CacheStore, url: string, trust: RemoteTrust): Promise<{ cache: RemoteCache; warnings: string[]; close: () => void }> {
  const remote = await S3Remote.connect(parseS3Url(url));
  const warnings: string[] = [];
  return { cache: new RemoteCache(store, remote, trust, new GroupCommit(), (m) => warnings.push(m)), warnings, close: () => remote.close() };
}

const freshUrl = (): string => `s3://${bucket}/rc-${process.pid}-${Math.random().toString(36).slice(2)}`;

function emptyStore(): CacheStore {
  const store = new CacheStore(join(mkdtempSync(join(tmpdir(), 'dfwe-remote-b-')), 'cache'));
  store.claim();
  return store;
}

test('a result put from one cache is found by another, its objects checked and kept with their modes, its record kept locally', server, async () => {
  const { store: a, records } = ranCache();
  const url = freshUrl();
  const writer = await remoteFor(a, url, { key: KEY });
  const b = emptyStore();
  const reader = await remoteFor(b, url, { key: KEY });
  try {
    for (const r of records) await writer.cache.put(r);
    const held: ExecKey[] = [];
    for await (const k of reader.cache.records()) held.push(k);
    assert.deepEqual(held.sort(), records.map((r) => r.execKey).sort());
    for (const r of records) {
      const found = await reader.cache.lookup(r.execKey);
      assert.deepEqual(found, readRecord(a, r.execKey), `the record of ${r.nodeId}`);
      assert.equal(await reader.cache.get(found!, Infinity), true);
      assert.deepEqual(readRecord(b, r.execKey), found, 'kept in the local store');
      for (const d of objectsOf(r)) {
        assert.ok(readFileSync(b.objectPath(d)).equals(readFileSync(a.objectPath(d))), `object ${d}`);
        assert.equal(statSync(b.objectPath(d)).mode & 0o777, statSync(a.objectPath(d)).mode & 0o777, `mode of ${d}`);
      }
    }
    assert.deepEqual(reader.warnings, []);
  } finally {
    writer.close();
    reader.close();
  }
});

test('an object damaged or planted on the server is never served: the result is not kept', server, async () => {
  const { store: a, records } = ranCache();
  const url = freshUrl();
  const writer = await remoteFor(a, url, { key: KEY });
  const b = emptyStore();
  const reader = await remoteFor(b, url, { key: KEY });
  const raw = await S3Remote.connect(parseS3Url(url));
  try {
    const r = records.find((x) => x.nodeId === 'model')!;
    await writer.cache.put(r);
    const victim = objectsOf(r)[0]!;
    await raw.putBytes(`objects/${victim}`, Buffer.from('planted weights\n'));
    const found = await reader.cache.lookup(r.execKey);
    assert.ok(found, 'the record itself is signed and whole');
    assert.equal(await reader.cache.get(found, Infinity), false);
    assert.match(reader.warnings.join('\n'), new RegExp(`objects/${victim}, named by the record of model: its bytes are not the ones its digest names`));
    assert.throws(() => statSync(b.objectPath(victim)), /ENOENT/, 'not in the local store');
    assert.equal(readRecord(b, r.execKey), undefined, 'no local record');
  } finally {
    writer.close();
    reader.close();
    raw.close();
  }
});

test('a reader with the signing key refuses records unsigned, signed with another key, moved to another key or edited', server, async () => {
  const { store: a, records } = ranCache();
  const [r1, r2] = records as [NodeRecord, NodeRecord];
  const url = freshUrl();
  const raw = await S3Remote.connect(parseS3Url(url));
  const reader = await remoteFor(emptyStore(), url, { key: KEY });
  const keyless = await remoteFor(emptyStore(), url, {});
  try {
    const cases: [string, string, RegExp][] = [
      ['unsigned', sealEnvelope(r1), /unsigned/],
      ['another key', sealEnvelope(r1, Buffer.from('an attacker key')), /signature does not match/],
      ['moved', sealEnvelope(r2, KEY), /signature does not match/],
      ['edited', (() => {
        const e = JSON.parse(sealEnvelope(r1, KEY));
        e.record = e.record.replace(/"durationMs":\d+/, '"durationMs":1');
        return JSON.stringify(e);
      })(), /signature does not match/],
    ];
    for (const [what, envelope, why] of cases) {
      reader.warnings.length = 0;
      await raw.putBytes(`records/${r1.execKey}.json`, Buffer.from(envelope));
      assert.equal(await reader.cache.lookup(r1.execKey), undefined, what);
      assert.match(reader.warnings.join('\n'), why, what);
    }
    // Signed right, it is served; a machine without the key does not read it unless told to.
    await raw.putBytes(`records/${r1.execKey}.json`, Buffer.from(sealEnvelope(r1, KEY)));
    assert.deepEqual(await reader.cache.lookup(r1.execKey), readRecord(a, r1.execKey));
    assert.equal(await keyless.cache.lookup(r1.execKey), undefined);
    assert.match(keyless.warnings.join('\n'), /cannot be checked here/);
  } finally {
    raw.close();
    reader.close();
    keyless.close();
  }
});

test('a read-only remote never writes, whatever its credentials allow', server, async () => {
  const { store: a, records } = ranCache();
  const url = freshUrl();
  const ro = await remoteFor(a, url, { key: KEY, readOnly: true });
  try {
    for (const r of records) await ro.cache.put(r);
    const names: string[] = [];
    for await (const n of ro.cache.remote.list('')) names.push(n);
    assert.deepEqual(names, []);
  } finally {
    ro.close();
  }
});

const PIPELINE = `version: 1
stages:
  prep:
    cmd: echo data > \${{ outs.f }}
    outs: { f: out/prep }
  train:
    cmd: mkdir -p \${{ outs.d }} && cat \${{ stages.prep.outs.f }} > \${{ outs.d }}/w && echo trained >> \${{ outs.d }}/w
    outs: { d: out/model }
  score:
    cmd: wc -c < \${{ stages.train.outs.d }}/w > \${{ outs.f }}
    outs: { f: out/score }
`;

test('dfwe push from one workspace, dfwe pull in another with its own cache: every node comes from the remote, its bytes identical', server, async () => {
  const url = freshUrl();
  const env = { DFWE_REMOTE: url, DFWE_REMOTE_KEY: 'team key' };
  const a = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(a, ['run']).code, 0);
  const push = dfwe(a, ['push'], env);
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stderr, /pushed 3 results to s3:\/\//);
  // Without the key, a machine reads nothing it cannot check.
  const b = workspace({ 'dfwe.yaml': PIPELINE });
  const keyless = dfwe(b, ['pull', '--remote', url]);
  assert.equal(keyless.code, 0, keyless.stderr);
  assert.match(keyless.stderr, /cannot be checked here[\s\S]*pulled 0 results[^\n]*; 3 nodes will still run/);
  const pull = dfwe(b, ['pull'], env);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stderr, /pulled 3 results from s3:\/\//, 'each round keys the nodes after what it pulled');
  const run = dfwe(b, ['run']);
  assert.deepEqual(ran(run), [], run.stderr);
  for (const f of ['out/prep', 'out/model/w', 'out/score']) assert.equal(read(b, f), read(a, f), f);
  // A read-only machine pushes nothing; a remote that is down is said, and fails the command.
  const ro = dfwe(a, ['push', '--remote-readonly'], env);
  assert.equal(ro.code, 2);
  assert.match(ro.stderr, /read-only here: nothing is pushed/);
  const down = dfwe(a, ['push'], { ...env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /the remote s3:\/\/.*cannot be reached/);
  assert.doesNotMatch(down.stderr, /internal error|at .*\.js:\d+/);
});

test('dfwe run with a shared cache: A uploads what it commits, B (another cache) downloads every node instead of running it; a remote that is down is a warning and a correct local run', server, async () => {
  const url = freshUrl();
  const env = { DFWE_REMOTE: url, DFWE_REMOTE_KEY: 'team key' };
  const a = workspace({ 'dfwe.yaml': PIPELINE });
  const ra = dfwe(a, ['run'], env);
  assert.equal(ra.code, 0, ra.stderr);
  assert.match(ra.stderr, /shared cache s3:\/\/.*: 0 results downloaded, 3 uploaded/);
  const b = workspace({ 'dfwe.yaml': PIPELINE });
  const sb = dfwe(b, ['status'], env);
  assert.equal(sb.code, 0, sb.stderr);
  assert.match(sb.stdout, /will run +prep +cached remotely \(a run downloads it\)/, 'a node keyed from its sources alone is found there');
  const rb = dfwe(b, ['run'], env);
  assert.equal(rb.code, 0, rb.stderr);
  assert.deepEqual(ran(rb), [], 'nothing ran in B');
  assert.match(rb.stderr, /3 results downloaded, 0 uploaded/);
  for (const f of ['out/prep', 'out/model/w', 'out/score']) assert.equal(read(b, f), read(a, f), f);
  assert.deepEqual(ran(dfwe(b, ['run'])), [], 'kept in B\'s own cache: the next run needs no remote');
  // Read-only: looks, never uploads.
  const c = workspace({ 'dfwe.yaml': PIPELINE.replace('echo data', 'echo other') });
  const rc = dfwe(c, ['run', '--remote-readonly'], env);
  assert.equal(rc.code, 0, rc.stderr);
  assert.match(rc.stderr, /0 results downloaded, 0 uploaded \(uploads off/);
  // The store down: said once, and every node runs here.
  const d = workspace({ 'dfwe.yaml': PIPELINE });
  const rd = dfwe(d, ['run'], { ...env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
  assert.equal(rd.code, 0, rd.stderr);
  assert.deepEqual(ran(rd).sort(), ['prep', 'score', 'train']);
  assert.equal(rd.stderr.match(/this run goes on without it/g)?.length, 1, rd.stderr);
  for (const f of ['out/prep', 'out/model/w', 'out/score']) assert.equal(read(d, f), read(a, f), f);
});

/** Every record on the remote opens under the key and names only objects that are there, whole: what a reader sees is never half a result. */
async function assertConsistent(url: string): Promise<number> {
  const probe = await remoteFor(emptyStore(), url, { key: KEY });
  try {
    let records = 0;
    for await (const key of probe.cache.records()) {
      const record = await probe.cache.lookup(key);
      assert.ok(record, `record ${key} opens: ${probe.warnings.join('; ')}`);
      assert.equal(await probe.cache.get(record, Infinity), true, `every object of ${record.nodeId} is there and whole: ${probe.warnings.join('; ')}`);
      records++;
    }
    return records;
  } finally {
    probe.close();
  }
}

/** Files under a directory tree (for the server's own storage). */
function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

test('two pushes of one result at once, and a push killed mid-upload, leave the remote consistent', { skip: server.skip || (!process.env.DFWE_TEST_S3_DIR && 'the server\'s directory is not known (DFWE_TEST_S3_DIR)') }, async () => {
  const url = freshUrl();
  const env = { DFWE_REMOTE: url, DFWE_REMOTE_KEY: KEY.toString(), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  // 300 MB of weights: uploaded in parts, long enough to be killed in the middle.
  const big = workspace({ 'dfwe.yaml': `version: 1
stages:
  weights:
    cmd: head -c 314572800 /dev/urandom > \${{ outs.f }}
    outs: { f: out/weights.bin }
  small:
    cmd: echo s > \${{ outs.f }}
    outs: { f: out/small }
` });
  assert.equal(dfwe(big, ['run', '--no-push'], env).code, 0);
  const storage = join(process.env.DFWE_TEST_S3_DIR!, 'srv');
  const before = countFiles(storage);
  const push = dfweAsync(big, ['push'], env);
  // Killed once the server holds some of what it sent (parts of the big object), before the end.
  while (countFiles(storage) === before) await new Promise((r) => setTimeout(r, 5));
  push.child.kill('SIGKILL');
  await push.done;
  const afterKill = await assertConsistent(url);
  assert.ok(afterKill < 2, `the killed push did not finish (${afterKill} records)`);
  // Two pushes of the same results at once: both succeed, and the remote holds each once, whole.
  const [p1, p2] = await Promise.all([dfweAsync(big, ['push'], env).done, dfweAsync(big, ['push'], env).done]);
  assert.equal(p1.code, 0, p1.stderr);
  assert.equal(p2.code, 0, p2.stderr);
  assert.equal(await assertConsistent(url), 2);
  const b = workspace({ 'dfwe.yaml': readFileSync(join(big, 'dfwe.yaml'), 'utf8') });
  const rb = dfwe(b, ['run'], env);
  assert.deepEqual(ran(rb), [], rb.stderr);
  assert.ok(readFileSync(join(b, 'out/weights.bin')).equals(readFileSync(join(big, 'out/weights.bin'))));
});

test('the pipeline names its shared cache (remote:), under what --remote and DFWE_REMOTE say; a bad URL is a located error', server, async () => {
  const url = freshUrl();
  const withRemote = `version: 1\nremote: ${url}\n${PIPELINE.slice('version: 1\n'.length)}`;
  const env = { DFWE_REMOTE_KEY: 'team key' };
  const a = workspace({ 'dfwe.yaml': withRemote });
  assert.match(dfwe(a, ['run'], env).stderr, /0 results downloaded, 3 uploaded/);
  const b = workspace({ 'dfwe.yaml': withRemote });
  const rb = dfwe(b, ['run'], env);
  assert.deepEqual(ran(rb), [], rb.stderr);
  assert.match(rb.stderr, /3 results downloaded/);
  // DFWE_REMOTE names another remote: that one is used (it holds nothing).
  const c = workspace({ 'dfwe.yaml': withRemote });
  const rc = dfwe(c, ['run'], { ...env, DFWE_REMOTE: freshUrl() });
  assert.deepEqual(ran(rc), ['prep', 'score', 'train']);
  const bad = workspace({ 'dfwe.yaml': withRemote.replace(url, 'https://example.com/bucket') });
  const rbad = dfwe(bad, ['status']);
  assert.equal(rbad.code, 2);
  assert.match(rbad.stderr, /dfwe\.yaml:2:\d+: error: .*remote/);
});

test('gc --remote keeps what the pipeline reaches and removes the rest, planted records included; it refuses where it cannot tell', server, async () => {
  const url = freshUrl();
  const env = { DFWE_REMOTE: url, DFWE_REMOTE_KEY: KEY.toString() };
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(ws, ['run'], env).code, 0);
  // A new version of the last stage: its old result is no longer reached.
  writeFileSync(join(ws, 'dfwe.yaml'), PIPELINE.replace('wc -c <', 'wc -l <'));
  assert.deepEqual(ran(dfwe(ws, ['run'], env)), ['score']);
  const raw = await S3Remote.connect(parseS3Url(url));
  try {
    await raw.putBytes(`records/${'ab'.repeat(16)}.json`, Buffer.from(sealEnvelope(readRecord(new CacheStore(join(ws, 'cache')), [...recordKeys(new CacheStore(join(ws, 'cache')))][0]!)!)));
    const names = async (under: string): Promise<string[]> => {
      const out: string[] = [];
      for await (const n of raw.list(under)) out.push(n);
      return out;
    };
    assert.equal((await names('records/')).length, 5, 'prep, train, two versions of score, one planted');
    const keyless = dfwe(ws, ['gc', '--remote'], { DFWE_REMOTE: url });
    assert.equal(keyless.code, 2);
    assert.match(keyless.stderr, /needs the signing key/);
    // --keep-runs 0: only what the pipeline reaches now (the last runs of the history keep theirs otherwise, as the local gc's).
    const dry = dfwe(ws, ['gc', '--remote', '-n', '--keep-runs', '0'], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would remove 2 records and 1 objects/);
    assert.equal((await names('records/')).length, 5, 'a dry run removes nothing');
    const gc = dfwe(ws, ['gc', '--remote', '--keep-runs', '0'], env);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /removed 2 records and 1 objects[\s\S]*kept 3 records/);
    assert.equal(await assertConsistent(url), 3);
    const fresh = workspace({ 'dfwe.yaml': PIPELINE.replace('wc -c <', 'wc -l <') });
    assert.deepEqual(ran(dfwe(fresh, ['run'], env)), [], 'what the pipeline uses is still there');
    // Where a node is not cached, gc cannot tell its results from dead ones: it refuses.
    const partial = workspace({ 'dfwe.yaml': PIPELINE });
    const refused = dfwe(partial, ['gc', '--remote'], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /3 nodes are not cached here/);
  } finally {
    raw.close();
  }
});

test('an object damaged on the server is found out by the run that would use it: that node runs here, the others come from the remote', server, async () => {
  const url = freshUrl();
  const env = { DFWE_REMOTE: url, DFWE_REMOTE_KEY: KEY.toString() };
  const a = workspace({ 'dfwe.yaml': PIPELINE });
  assert.equal(dfwe(a, ['run'], env).code, 0);
  const store = new CacheStore(join(a, 'cache'));
  const train = [...recordKeys(store)].map((k) => readRecord(store, k)!).find((r) => r.nodeId === 'train')!;
  const raw = await S3Remote.connect(parseS3Url(url));
  try {
    await raw.putBytes(`objects/${objectsOf(train)[0]}`, Buffer.from('flipped bits\n'));
  } finally {
    raw.close();
  }
  const b = workspace({ 'dfwe.yaml': PIPELINE });
  const rb = dfwe(b, ['run', '--no-push'], env);
  assert.equal(rb.code, 0, rb.stderr);
  assert.deepEqual(ran(rb), ['train'], rb.stderr);
  assert.match(rb.stderr, /named by the record of train: its bytes are not the ones its digest names/);
  assert.match(rb.stderr, /2 results downloaded/);
  for (const f of ['out/prep', 'out/model/w', 'out/score']) assert.equal(read(b, f), read(a, f), f);
});

const root = process.getuid?.() === 0;
test('the server stopped in the middle of a run: a warning, once, and the rest of the run is done here, correctly', { skip: server.skip || (!root && 'starting a server of its own needs root (scripts/local-s3.sh)') }, async () => {
  // A server of its own: this test stops it.
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-s3-midrun-'));
  const script = join(REPO, 'scripts/local-s3.sh');
  const started = spawnSync('bash', [script, 'start', dir], { encoding: 'utf8', env: { ...process.env, DFWE_S3_PORT: '18480' } });
  assert.equal(started.status, 0, started.stderr);
  try {
    const env = { DFWE_REMOTE: 's3://dfwe-test/midrun', DFWE_REMOTE_KEY: KEY.toString(), AWS_ENDPOINT_URL: 'http://127.0.0.1:18480' };
    const first = 'version: 1\nstages:\n  first:\n    cmd: echo 1 > ${{ outs.f }}\n    outs: { f: out/first }\n';
    const a = workspace({ 'dfwe.yaml': first });
    assert.match(dfwe(a, ['run'], env).stderr, /1 uploaded/);
    // B: first comes from the remote; then a stage stops the server; what follows it finds no remote.
    const b = workspace({ 'dfwe.yaml': `${first}  stopper:\n    cmd: bash ${script} stop ${dir} && cat \${{ stages.first.outs.f }} > \${{ outs.f }}\n    outs: { f: out/stopper }\n  last:\n    cmd: cat \${{ stages.stopper.outs.f }} > \${{ outs.f }} && echo last >> \${{ outs.f }}\n    outs: { f: out/last }\n` });
    const rb = dfwe(b, ['run'], env);
    assert.equal(rb.code, 0, rb.stderr);
    assert.deepEqual(ran(rb), ['last', 'stopper']);
    assert.equal(rb.stderr.match(/this run goes on without it/g)?.length, 1, rb.stderr);
    assert.match(rb.stderr, /cannot be reached/);
    assert.equal(read(b, 'out/last'), '1\nlast\n');
    assert.doesNotMatch(rb.stderr, /internal error/);
  } finally {
    spawnSync('bash', [script, 'stop', dir]);
  }
});
