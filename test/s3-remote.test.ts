import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseS3Url, RemoteFailure, S3Remote } from '../src/cache/s3-remote.js';
import { digestBytes } from '../src/util/hash.js';
import { UserError } from '../src/diagnostics.js';
import { workspace } from './helpers.js';

/*
 * Against a real S3-compatible server: `.ci/run` starts one (scripts/local-s3.sh: OpenStack Swift
 * with s3api on 127.0.0.1), exports its address and a writer's keys, and sets
 * DFWE_TEST_S3=required, so in CI these tests cannot be skipped. Elsewhere they run when
 * AWS_ENDPOINT_URL and DFWE_TEST_S3_BUCKET name a server that answers.
 */
const bucket = process.env.DFWE_TEST_S3_BUCKET;
const serverProblem = await (async (): Promise<string | false> => {
  if (!bucket || !process.env.AWS_ENDPOINT_URL) return 'no S3 server (start one with scripts/local-s3.sh)';
  const r = await S3Remote.connect(parseS3Url(`s3://${bucket}`));
  try {
    await r.head('dfwe-test-probe');
    return false;
  } catch (err) {
    return `the S3 server at ${process.env.AWS_ENDPOINT_URL} does not answer: ${(err as Error).message}`;
  } finally {
    r.close();
  }
})();
if (serverProblem && process.env.DFWE_TEST_S3 === 'required') throw new Error(`DFWE_TEST_S3=required but ${serverProblem}`);
const server = { skip: serverProblem } as const;

/** A remote under a prefix of its own, so that tests do not see each other's objects. */
async function fresh(opts: Parameters<typeof S3Remote.connect>[1] = {}): Promise<S3Remote> {
  return S3Remote.connect(parseS3Url(`s3://${bucket}/t-${process.pid}-${Math.random().toString(36).slice(2)}`), opts);
}

/** `size` bytes that differ from block to block (what is uploaded in parts must be put back in order). */
function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  return b;
}

const dir = workspace();

test('s3:// URLs: a bucket and a prefix; anything else is said as the user\'s mistake', () => {
  assert.deepEqual(parseS3Url('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
  assert.deepEqual(parseS3Url('s3://my-bucket/team/dfwe/'), { bucket: 'my-bucket', prefix: 'team/dfwe/' });
  for (const bad of ['http://x/y', 's3://', 's3://Upper', 's3://b/../x', 'my-bucket']) assert.throws(() => parseS3Url(bad), UserError, bad);
});

test('an object goes up and comes back checked against its digest: in one request and in parts', server, async () => {
  const r = await fresh();
  try {
    for (const size of [1000, 80 << 20]) {
      const bytes = patterned(size, size);
      const path = join(dir, `up-${size}`);
      writeFileSync(path, bytes);
      const digest = digestBytes(bytes);
      await r.putFile(`objects/${digest}`, path, size, { meta: { exec: String(size) } });
      assert.equal(await r.head(`objects/${digest}`), size);
      const dest = join(dir, `down-${size}`);
      assert.deepEqual(await r.getVerified(`objects/${digest}`, digest, dest), { state: 'ok', meta: { exec: String(size) } }, 'the bytes, and what they were put with');
      assert.ok(readFileSync(dest).equals(bytes), `${size} bytes back as they went`);
    }
    const names: string[] = [];
    for await (const n of r.list('objects/')) names.push(n);
    assert.equal(names.length, 2);
    assert.ok(names.every((n) => /^objects\/[0-9a-f]{32}$/.test(n)), names.join());
  } finally {
    r.close();
  }
});

test('an object whose bytes are not what its digest names is never given: changed, truncated or missing', server, async () => {
  const r = await fresh();
  try {
    const good = patterned(5000, 1);
    const digest = digestBytes(good);
    for (const [what, stored] of [['changed', patterned(5000, 2)], ['truncated', good.subarray(0, 4096)]] as const) {
      await r.putBytes(`objects/${digest}`, stored);
      const dest = join(dir, `corrupt-${what}`);
      assert.deepEqual(await r.getVerified(`objects/${digest}`, digest, dest), { state: 'corrupt' }, what);
      assert.ok(!existsSync(dest), `nothing left of a ${what} download`);
    }
    assert.deepEqual(await r.getVerified('objects/nothing-here', digest, join(dir, 'missing')), { state: 'missing' });
    assert.equal(await r.head('objects/nothing-here'), undefined);
    assert.equal(await r.getBytes('records/nothing-here'), undefined);
  } finally {
    r.close();
  }
});

test('an upload killed half-way leaves nothing under its name', server, async () => {
  const r = await fresh();
  try {
    const size = 200 << 20;
    const path = join(dir, 'killed');
    writeFileSync(path, patterned(size, 3));
    const name = 'objects/killed';
    // A process of its own that uploads in parts and says when the first has gone.
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { S3Remote, parseS3Url } from ${JSON.stringify(fileURLToPath(new URL('../src/cache/s3-remote.js', import.meta.url)))};
      const r = await S3Remote.connect(parseS3Url(${JSON.stringify(r.url)}));
      await r.putFile(${JSON.stringify(name)}, ${JSON.stringify(path)}, ${size}, { onProgress: (b) => { if (b > 0) process.stdout.write('part\\n'); } });
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the uploader ended (${code}) before a part went`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(await r.head(name), undefined, 'no object under the name');
    const names: string[] = [];
    for await (const n of r.list('')) names.push(n);
    assert.deepEqual(names, [], 'nothing a listing shows');
    // What the killed writer left is an unfinished upload in parts, which gc aborts (here: whatever its age).
    assert.equal(await r.abandonUploads(0), 1);
    assert.equal(await r.abandonUploads(0), 0, 'gone once aborted');
  } finally {
    r.close();
  }
});

test('a store that is down is a RemoteFailure within seconds, not a hang or a crash', async () => {
  const r = await S3Remote.connect(parseS3Url('s3://dfwe-test'), { endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const t = performance.now();
  try {
    await assert.rejects(r.head('x'), (err: unknown) => err instanceof RemoteFailure && !err.refused && /cannot be reached \(ECONNREFUSED/.test(err.message));
    await assert.rejects(r.putBytes('x', Buffer.from('y')), RemoteFailure);
  } finally {
    r.close();
  }
  assert.ok(performance.now() - t < 15_000, 'said within seconds');
});

test('credentials that may only read can read and are refused a write, said as refused', server, async () => {
  const w = await fresh();
  const reader = await S3Remote.connect(parseS3Url(w.url), { credentials: { accessKeyId: process.env.DFWE_TEST_S3_READER_ID!, secretAccessKey: process.env.DFWE_TEST_S3_READER_SECRET! } });
  try {
    await w.putBytes('records/r1', Buffer.from('{"a":1}'));
    assert.equal((await reader.getBytes('records/r1'))?.toString(), '{"a":1}');
    await assert.rejects(reader.putBytes('records/r2', Buffer.from('x')), (err: unknown) => err instanceof RemoteFailure && err.refused && /access denied/.test(err.message));
    assert.equal(await w.head('records/r2'), undefined);
  } finally {
    w.close();
    reader.close();
  }
});
