import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LocalCache, type Cache } from '../src/cache/cache.js';
import { GroupCommit } from '../src/cache/group-commit.js';
import { SEAL_MS } from '../src/cache/objects.js';
import { parseRecord, readRecord, recordText, type NodeRecord } from '../src/cache/records.js';
import { CacheStore } from '../src/cache/store.js';
import { execKeyOf, planKeyOf } from '../src/keys/fingerprint.js';
import { isDigest, isExecKey, type Digest, type ExecKey } from '../src/util/key-types.js';
import { digestBytes } from '../src/util/hash.js';
import { read, workspace } from './helpers.js';
import { openIn as open, runIn as runWith } from './in-process.js';

/*
 * The Cache seam (src/cache/cache.ts): the local store honours lookup, get, put and records, and a
 * run's nodes go through the cache they are given, so that another cache (a shared store) can be
 * handed in without a branch in the scheduler.
 */

const PIPELINE = `version: 1
stages:
  a:
    cmd: echo made-by-a > \${{ outs.o }}
    outs: { o: out/a.txt }
  b:
    cmd: cat \${{ stages.a.outs.o }} > \${{ outs.o }}; echo and-b >> \${{ outs.o }}
    outs: { o: out/b.txt }
`;

/** A cache that is the local store, counting what the run asks of it; `refuse` makes every get fail. */
class Counting implements Cache {
  puts: ExecKey[] = [];
  gets: ExecKey[] = [];
  refuse = false;
  constructor(private readonly inner: LocalCache) {}
  lookup(key: ExecKey): Promise<NodeRecord | undefined> {
    return this.inner.lookup(key);
  }
  async get(record: NodeRecord, verifyUpTo: number): Promise<boolean> {
    this.gets.push(record.execKey);
    return !this.refuse && (await this.inner.get(record, verifyUpTo));
  }
  async put(record: NodeRecord): Promise<void> {
    this.puts.push(record.execKey);
    await this.inner.put(record);
  }
  records(): AsyncIterable<ExecKey> {
    return this.inner.records();
  }
}

async function keysOf(cache: Cache): Promise<ExecKey[]> {
  const out: ExecKey[] = [];
  for await (const k of cache.records()) out.push(k);
  return out;
}

test('the local cache: what is put is looked up and listed; a damaged object fails get and is quarantined', async () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  const project = await open(ws);
  const summary = await runWith(project);
  assert.equal(summary.ran, 2);
  const cache = new LocalCache(project.store, new GroupCommit());
  const served = [...summary.served.values()];
  assert.deepEqual((await keysOf(cache)).sort(), served.map((s) => s.execKey).sort());
  const a = summary.served.get('a')!;
  const record = (await cache.lookup(a.execKey))!;
  assert.equal(record.nodeId, 'a');
  assert.equal(await cache.lookup('0'.repeat(32) as ExecKey), undefined);
  assert.equal(await cache.get(record, Infinity), true);
  // The object's bytes change under an intact seal: only re-hashing can tell.
  const object = project.store.objectPath(record.outputs.o!.digest);
  chmodSync(object, 0o644);
  writeFileSync(object, 'made-by-X\n');
  utimesSync(object, SEAL_MS / 1000, SEAL_MS / 1000);
  assert.equal(await cache.get(record, Infinity), false);
  assert.ok(!existsSync(object), 'the damaged object is moved aside');
  assert.equal(readdirSync(project.store.quarantineDir).length, 1);
});

test('a put whose record cannot be made durable leaves no record', async () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  const project = await open(ws);
  const summary = await runWith(project);
  const good = new LocalCache(project.store, new GroupCommit());
  const record = (await good.lookup(summary.served.get('b')!.execKey))!;
  rmSync(project.store.recordPath(record.execKey));
  const failing = { durable: async (paths: Iterable<string>) => {
    if ([...paths].some((p) => p.endsWith('.json'))) throw Object.assign(new Error('I/O error'), { code: 'EIO' });
  } } as unknown as GroupCommit;
  await assert.rejects(new LocalCache(project.store, failing).put(record), /I\/O error/);
  assert.equal(await good.lookup(record.execKey), undefined);
  await good.put(record);
  assert.equal((await good.lookup(record.execKey))?.execKey, record.execKey);
});

test("a run's nodes put what they ran into the cache they are given, and restore only what it gets", async () => {
  const ws = workspace({ 'dfwe.yaml': PIPELINE });
  const project = await open(ws);
  const counting = new Counting(new LocalCache(project.store, new GroupCommit()));
  const first = await runWith(project, { cache: counting });
  assert.equal(first.ran, 2);
  assert.deepEqual(counting.puts, [first.served.get('a')!.execKey, first.served.get('b')!.execKey]);
  // An output gone from the workspace: restored from what the cache gets.
  rmSync(join(ws, 'out/b.txt'));
  const again = await runWith(await open(ws), { cache: counting });
  assert.deepEqual([again.ran, again.cached, again.restored], [0, 2, 1]);
  assert.deepEqual(counting.gets, [first.served.get('b')!.execKey]);
  assert.equal(read(ws, 'out/b.txt'), 'made-by-a\nand-b\n');
  // A cache that cannot give the result's contents: the node runs instead, and puts its result.
  rmSync(join(ws, 'out/b.txt'));
  counting.refuse = true;
  counting.puts = [];
  const refused = await runWith(await open(ws), { cache: counting });
  assert.deepEqual([refused.ran, refused.cached], [1, 1]);
  assert.deepEqual(counting.puts, [first.served.get('b')!.execKey]);
  assert.equal(read(ws, 'out/b.txt'), 'made-by-a\nand-b\n');
});

test('plan keys, execution keys and digests are told apart by the compiler (tsc --noEmit checks this file)', () => {
  const fp = { format: 2, type: 'cmd', version: 1, command: 'true', params: {}, pipelineParams: {}, env: {}, deps: {}, outs: {}, upstream: {} };
  const planKey = planKeyOf(fp);
  const execKey = execKeyOf(fp);
  const digest = digestBytes('x');
  // The same fingerprint gives the same hex either way: only the type says which it is.
  assert.equal(String(planKey), String(execKey));
  // @ts-expect-error a plan key is not an execution key (it would look up the wrong record)
  const wrongKey: ExecKey = planKey;
  // @ts-expect-error a content digest is not an execution key
  const wrongDigest: ExecKey = digest;
  // @ts-expect-error an execution key does not name an object
  const wrongObject: Digest = execKey;
  assert.ok(isExecKey(wrongKey) && isExecKey(wrongDigest) && isDigest(wrongObject));
  assert.ok(!isExecKey('not-a-key') && !isDigest(`${digest}.tmp-1`));
});

test('a record an earlier dfwe wrote (format 3, 2026-12-07) is read as written: its checksum is worked out as it was', () => {
  // Verbatim from a cache of that day: records are found by later versions (cache compatibility).
  const text = '{"format":3,"nodeId":"finetune[i=7]","planKey":"f3dec1041f4c49452d12e80b8ce4779d","execKey":"29614f0f80ad97dd230def93839ba15a","fingerprint":{"format":2,"type":"cmd","version":1,"command":"cat out/expert/i=7/e > out/finetune/i=7/f","params":{},"pipelineParams":{},"env":{},"deps":{},"outs":{"f":"out/finetune/i=7/f"},"upstream":{"expert[i=7]":"787681c986a12dc461be23339ddc5ab8"}},"outputs":{"f":{"path":"out/finetune/i=7/f","kind":"file","digest":"c9f902d3a27a03a1ac784b89c64a0bbf","size":11}},"startedAt":"2026-12-07T15:58:19.040Z","durationMs":1.620150000000649,"host":"vm","reads":["3b812a445707eabeb985ee3ad7d76b77"],"check":"85bfb8a131dcc7dc430612cb4b0afcc9"}';
  const key = '29614f0f80ad97dd230def93839ba15a' as ExecKey;
  assert.deepEqual(parseRecord(text, key), JSON.parse(text));
  assert.equal(recordText(parseRecord(text, key)!), text, 'written again as it was');
  assert.equal(parseRecord(text.replace('"durationMs":1.62', '"durationMs":2.62'), key), undefined, 'a record changed since its check is refused');
});

test('a record looked up where there is none, where its shard is a file, or where it is a directory, is a miss, never a crash', () => {
  const root = join(workspace(), 'cache');
  const store = new CacheStore(root);
  const key = (c: string): ExecKey => c.repeat(32) as ExecKey;
  assert.equal(readRecord(store, key('a')), undefined);
  mkdirSync(dirname(dirname(store.recordPath(key('b')))), { recursive: true });
  writeFileSync(dirname(store.recordPath(key('b'))), 'not a shard');
  assert.equal(readRecord(store, key('b')), undefined, 'a shard that is a file');
  mkdirSync(store.recordPath(key('c')), { recursive: true });
  assert.equal(readRecord(store, key('c')), undefined, 'a record path that is a directory');
});
