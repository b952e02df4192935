import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { dfwe, listFiles, oneTensorModel, ran, read, workspace, write, type CliResult } from './helpers.js';

/*
 * The second adversarial pass (issue 23): each repro, as a hostile or careless user would do it,
 * against the real CLI. Every test here failed on 7427c68.
 */

const PIPE = (stages: string): string => `version: 1\nstages:\n${stages}`;

test('repro 1: a non-empty directory that dfwe did not make is refused as a cache, and gc deletes only names dfwe gives', () => {
  const ws = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: echo hi > a.txt\n    outs: { o: a.txt }\n') });
  const d = join(ws, 'D');
  write(d, 'records/finance.csv', 'x\n');
  write(d, 'tmp/notes/draft.txt', 'y\n');
  const r = dfwe(ws, ['--cache', 'D', 'run']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /the cache .*D is not empty and is not a dfwe cache \(it has no CACHEDIR\.TAG marker\)/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  assert.equal(dfwe(ws, ['--cache', 'D', 'gc']).code, 2);
  assert.deepEqual(listFiles(d).sort(), ['records/finance.csv', 'tmp/notes/draft.txt']);

  // A cache dfwe made is marked; a user's file put in it later survives gc (not a name dfwe gives).
  const ok = dfwe(ws, ['--cache', 'C', 'run']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(read(ws, 'C/CACHEDIR.TAG'), /^Signature: 8a477f597d28d172789f06886806bc55\n[\s\S]*dfwe-cache-format: 1/);
  write(ws, 'C/records/finance.csv', 'x\n');
  write(ws, 'C/tmp/notes/draft.txt', 'y\n');
  write(ws, 'C/objects/ab/mine.txt', 'z\n');
  write(ws, 'C/quarantine/readme', 'q\n');
  const gc = dfwe(ws, ['--cache', 'C', 'gc', '--keep-runs', '0']);
  assert.equal(gc.code, 0, gc.stderr);
  for (const f of ['records/finance.csv', 'tmp/notes/draft.txt', 'objects/ab/mine.txt', 'quarantine/readme']) assert.ok(existsSync(join(ws, 'C', f)), f);

  // An empty directory is adopted and marked; another tool's CACHEDIR.TAG is not dfwe's.
  mkdirSync(join(ws, 'E'));
  assert.equal(dfwe(ws, ['--cache', 'E', 'run']).code, 0);
  assert.ok(existsSync(join(ws, 'E/CACHEDIR.TAG')));
  write(ws, 'F/CACHEDIR.TAG', 'Signature: 8a477f597d28d172789f06886806bc55\n# borg\n');
  const other = dfwe(ws, ['--cache', 'F', 'run']);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /holds a CACHEDIR\.TAG that dfwe did not write/);
});

test('a cache another run is marking at this moment (only the marker\'s temp file there) is taken as new, not refused', () => {
  // Seen with four runs started at once on a fresh workspace: one saw the other's marker temp file.
  const ws = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: mkdir -p out && echo hi > out/a.txt\n    outs: { o: out/a.txt }\n') });
  write(ws, 'cache/CACHEDIR.TAG.tmp-4194305-0', 'Signature: 8a477f597d28d172789f06886806bc55\n');
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(read(ws, 'cache/CACHEDIR.TAG'), /dfwe-cache-format: 1/);
});

test('repro 22: a cache refused for its place (the workspace, an output) is left as it was: nothing created', () => {
  const ws = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: mkdir -p out && echo hi > out/a.txt\n    outs: { o: out/a.txt }\n') });
  const before = listFiles(ws).sort();
  for (const cache of ['.', 'out', 'out/a.txt/x']) {
    const r = dfwe(ws, ['--cache', cache, 'run']);
    assert.equal(r.code, 2, `${cache}: ${r.stderr}`);
    assert.deepEqual(listFiles(ws).sort(), before, cache);
    assert.ok(!existsSync(join(ws, 'out')), cache);
    assert.ok(!existsSync(join(ws, 'locks')), cache);
  }
});

test('repro 2: a file the user put at an output path is never deleted, after a failed attempt or over a finished output', () => {
  const ws = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: test -e input.csv && cp input.csv results.csv\n    outs: { o: results.csv }\n') });
  assert.equal(dfwe(ws, ['run']).code, 1);
  write(ws, 'results.csv', 'by hand\n');
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1);
  assert.match(r.stderr + r.stdout, /output "o" \(results\.csv\) already exists and was not made by dfwe/);
  assert.equal(read(ws, 'results.csv'), 'by hand\n');

  // A partial output the failed stage left is dfwe's own: the next run replaces it.
  const p = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: echo partial > out.txt && test -e go\n    outs: { o: out.txt }\n') });
  assert.equal(dfwe(p, ['run']).code, 1);
  assert.equal(read(p, 'out.txt'), 'partial\n');
  write(p, 'go', '');
  assert.equal(dfwe(p, ['run']).code, 0);
  // ...but not once the user put a file of their own there.
  write(p, 'dfwe.yaml', PIPE('  a:\n    cmd: echo partial2 > out.txt && test -e stop\n    outs: { o: out.txt }\n'));
  rmSync(join(p, 'go'));
  assert.equal(dfwe(p, ['run']).code, 1);
  write(p, 'stop', '');
  refusedOver(p, 'out.txt', 'my notes\n', /already exists and was not made by dfwe/);

  // A finished output replaced by the user's own file: refused, the user's file kept.
  const s = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: cat in.txt > report.txt\n    outs: { o: report.txt }\n'), 'in.txt': 'one\n' });
  assert.equal(dfwe(s, ['run']).code, 0);
  write(s, 'in.txt', 'two\n');
  refusedOver(s, 'report.txt', 'mine\n', /output "o" \(report\.txt\) already exists and was not made by dfwe/);
});

/** The user puts a file of their own at an output path (a new file), then runs: the node fails as `refusal` says, and the file is theirs still. */
function refusedOver(ws: string, rel: string, text: string, refusal: RegExp): CliResult {
  rmSync(join(ws, rel));
  write(ws, rel, text);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1);
  assert.match(r.stderr + r.stdout, refusal);
  assert.equal(read(ws, rel), text);
  return r;
}

test('repro 3: a damaged served set stops gc, which keeps every result', () => {
  const ws = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: cat in.txt > a.txt\n    outs: { o: a.txt }\n'), 'in.txt': 'one\n' });
  assert.equal(dfwe(ws, ['run']).code, 0);
  write(ws, 'in.txt', 'two\n');
  assert.equal(dfwe(ws, ['run']).code, 0);
  const served = join(ws, 'cache/runs/served');
  for (const n of readdirSync(served)) writeFileSync(join(served, n), '{"nodes":"garbage"}');
  const records = listFiles(join(ws, 'cache/records')).length;
  const gc = dfwe(ws, ['gc']);
  assert.equal(gc.code, 2, gc.stdout);
  assert.match(gc.stderr, /is damaged run history: gc would drop the results it keeps/);
  assert.equal(listFiles(join(ws, 'cache/records')).length, records);
  write(ws, 'in.txt', 'one\n');
  assert.deepEqual(ran(dfwe(ws, ['run'])), []);
  assert.ok(readFileSync(join(ws, 'a.txt'), 'utf8') === 'one\n');
});

/** A node's record file, edited by `edit`; `reseal` recomputes its manifest digests and checksum as a forger who knows the format would. */
async function editRecord(ws: string, node: string, edit: (r: Record<string, any>) => void, reseal: boolean): Promise<void> {
  const { keyOf } = await import('../src/util/hash.js');
  const { manifestDigest } = await import('../src/keys/tree.js');
  const key = JSON.parse(dfwe(ws, ['show', node, '--json']).stdout).record.execKey as string;
  const path = join(ws, 'cache/records', key.slice(0, 2), `${key}.json`);
  const r = JSON.parse(readFileSync(path, 'utf8'));
  edit(r);
  if (reseal) {
    for (const o of Object.values(r.outputs) as any[]) if (o.kind === 'dir') o.digest = manifestDigest(o.files, o.links ?? [], o.dirs ?? []);
    delete r.check;
    r.check = keyOf(r);
  }
  rmSync(path, { force: true });
  writeFileSync(path, JSON.stringify(r));
}

test('repro 4: a checkpoint outside the workspace is read only where read_only declares it, keyed by its content, and never written', () => {
  const outside = workspace();
  writeFileSync(join(outside, 'ext.safetensors'), oneTensorModel([1, 2]));
  const ws = workspace();
  writeFileSync(join(ws, 'b.safetensors'), oneTensorModel([3, 4]));
  const ext = join(outside, 'ext.safetensors');
  const stages =
    `  abs:\n    uses: merge\n    with: { models: [${ext}, b.safetensors] }\n    outs: { model: out/abs }\n` +
    `  rel:\n    uses: merge\n    with: { models: [${relative(ws, ext)}, b.safetensors] }\n    outs: { model: out/rel }\n` +
    // A PyTorch stage declares the same checkpoint as a dep.
    `  own:\n    cmd: cat ${ext} b.safetensors > both\n    deps: [${ext}, b.safetensors]\n    outs: { o: both }\n`;
  write(ws, 'dfwe.yaml', PIPE(stages));
  const undeclared = dfwe(ws, ['run']);
  assert.equal(undeclared.code, 2, undeclared.stderr);
  for (const [stage, line] of [['abs', 5], ['rel', 9], ['own', 13]] as const) {
    assert.match(undeclared.stderr, new RegExp(`dfwe\\.yaml:${line}:\\d+: error: dependency "[^"]*ext\\.safetensors" of stage "${stage}" lies outside the workspace, in no directory listed under read_only`), stage);
  }
  assert.match(undeclared.stderr, /hint: list the directory it lies in under read_only/);
  assert.ok(!existsSync(join(ws, 'out')));

  write(ws, 'dfwe.yaml', `version: 1\nread_only: [${outside}]\nstages:\n${stages}`);
  const merged = (name: string): number[] => [...new Float32Array(new Uint8Array(readFileSync(join(ws, `out/${name}/ext.safetensors`)).subarray(-8)).buffer)];
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['abs', 'own', 'rel']);
  assert.deepEqual(merged('abs'), [2, 3]);
  assert.deepEqual(ran(dfwe(ws, ['run'])), []);
  // The outside checkpoint changes: every node that reads it runs again (the repro served the stale merge).
  writeFileSync(ext, oneTensorModel([5, 6]));
  assert.match(dfwe(ws, ['why', 'abs']).stdout, /abs will run: dep .*ext\.safetensors changed/);
  const again = dfwe(ws, ['run']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(ran(again), ['abs', 'own', 'rel']);
  assert.deepEqual(merged('abs'), [4, 5]);
  assert.deepEqual(merged('rel'), [4, 5]);
  // So does a checkpoint in the workspace that no stage makes (it was not keyed either).
  writeFileSync(join(ws, 'b.safetensors'), oneTensorModel([7, 8]));
  assert.deepEqual(ran(dfwe(ws, ['run'])), ['abs', 'own', 'rel']);
  assert.deepEqual(listFiles(outside), ['ext.safetensors']);

  // Never written: an output that a symlink leads into a read_only directory is refused, even one also under allow_outside.
  symlinkSync(outside, join(ws, 'link'));
  write(ws, 'dfwe.yaml', `version: 1\nread_only: [${outside}]\nallow_outside: [${outside}]\nstages:\n${stages}  w:\n    cmd: echo x > link/x\n    outs: { o: link/x }\n`);
  const w = dfwe(ws, ['run']);
  assert.equal(w.code, 2);
  assert.match(w.stderr, /output "o" of stage "w" \(link\/x\) would be written in .*, which the pipeline lists under read_only: dfwe never writes there/);
  assert.deepEqual(listFiles(outside), ['ext.safetensors']);

  // An outside path named in the pipeline that is really in the workspace must be named relative to it (else it would be no edge).
  write(ws, 'dfwe.yaml', PIPE(`  a:\n    cmd: cat ${join(ws, 'b.safetensors')} > c\n    deps: [${join(ws, 'b.safetensors')}]\n    outs: { o: c }\n`));
  assert.match(dfwe(ws, ['run']).stderr, /dependency ".*b\.safetensors" of stage "a" lies in the workspace: name it relative to the workspace \(b\.safetensors\)/);
});

test('repro 7: a record edited to name another existing object is not served: it fails its checksum and the node runs', async () => {
  const ws = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: echo AAAA > a.txt\n    outs: { o: a.txt }\n  b:\n    cmd: echo BBBB > b.txt\n    outs: { o: b.txt }\n') });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const b = JSON.parse(dfwe(ws, ['show', 'b', '--json']).stdout).record.outputs.o;
  await editRecord(ws, 'a', (r) => Object.assign(r.outputs.o, { digest: b.digest, size: b.size }), false);
  const v = dfwe(ws, ['verify']);
  assert.equal(v.code, 1);
  assert.match(v.stdout, /2 records: 1 damaged\n  record [0-9a-f]{32} fails its checksum, shape or manifest/);
  rmSync(join(ws, 'a.txt'));
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['a']);
  assert.equal(read(ws, 'a.txt'), 'AAAA\n');
});

test('repro 5 and 15: a record whose links lead out, whose directories pass through a link, or with two entries at one path is absent: nothing outside is touched, no temp left', async () => {
  const outside = workspace({ 'keep.txt': 'outside\n' });
  const edits: [string, (o: Record<string, any>) => void][] = [
    ['a link out, a directory through it', (o) => Object.assign(o, { links: [{ path: 'L', target: outside }], dirs: ['L/PWNED'] })],
    ['a relative link out', (o) => Object.assign(o, { links: [{ path: 'L', target: '../../..' }] })],
    ['a link through a link', (o) => Object.assign(o, { links: [{ path: 'up', target: '..' }, { path: 'L', target: 'up/..' }] })],
    ['a file and a link at one path', (o) => Object.assign(o, { links: [{ path: o.files[0].path, target: 'x' }] })],
    ['a file below a file', (o) => o.files.push({ ...o.files[0], path: `${o.files[0].path}/inner` })],
  ];
  for (const [what, edit] of edits) {
    for (const reseal of [false, true]) {
      const ws = workspace({ 'dfwe.yaml': PIPE('  d:\n    cmd: mkdir -p out/d && echo x > out/d/f.txt\n    outs: { o: out/d }\n') });
      assert.equal(dfwe(ws, ['run']).code, 0);
      await editRecord(ws, 'd', (r) => edit(r.outputs.o), reseal);
      assert.match(dfwe(ws, ['verify']).stdout, /1 records: 1 damaged/, `${what}: verify sees it`);
      rmSync(join(ws, 'out/d'), { recursive: true });
      const r = dfwe(ws, ['run']);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.deepEqual(ran(r), ['d'], what);
      assert.deepEqual(listFiles(outside), ['keep.txt'], what);
      assert.deepEqual(readdirSync(join(ws, 'out')), ['d'], what);
      assert.deepEqual(listFiles(join(ws, 'out/d')), ['f.txt'], what);
      assert.equal(dfwe(ws, ['status']).code, 0);
    }
  }
});

test('repro 6: a node that read an upstream output damaged after its commit is not served once the damage is found', (t) => {
  if (process.getuid?.() !== 0) return t.skip('only root can write through the sealed, read-only output');
  const ws = workspace({
    'dfwe.yaml': PIPE(
      // The first time only, a child that outlives the stage's process group appends after the commit.
      // b says when it has started (go) and waits for the append (late), so the order does not depend on timing.
      // The stage waits until the child has left its process group (it touches detached after
      // setsid): a child still in the group when the stage's shell exits is stopped with it.
      "  a:\n    cmd: \"echo clean > a.txt; test -e once || { touch once; setsid sh -c 'touch detached; for i in $(seq 1200); do test -e go && break; sleep 0.05; done; echo LATE >> a.txt; touch late' </dev/null >/dev/null 2>&1 & for i in $(seq 1200); do test -e detached && break; sleep 0.05; done; }\"\n    outs: { o: a.txt }\n" +
        '  b:\n    cmd: touch go; for i in $(seq 1200); do test -e late && break; sleep 0.05; done; cat ${{ stages.a.outs.o }} > b.txt\n    outs: { o: b.txt }\n',
    ),
  });
  assert.equal(dfwe(ws, ['run']).code, 0);
  assert.equal(read(ws, 'b.txt'), 'clean\nLATE\n', 'the damage reached b (the repro)');
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['a', 'b']);
  assert.equal(read(ws, 'b.txt'), 'clean\n');
  rmSync(join(ws, 'b.txt'));
  assert.deepEqual(ran(dfwe(ws, ['run'])), [], 'then cached, restored from the clean result');
  assert.equal(read(ws, 'b.txt'), 'clean\n');
});

/** An F32 safetensors file written from the format's description; names are given as JSON text, so `__proto__` is a key like any other. */
function rawSafetensors(path: string, tensors: [name: string, dtype: string, values: number[]][]): void {
  let offset = 0;
  const entries = tensors.map(([name, dtype, v]) => {
    const e = `${JSON.stringify(name)}:{"dtype":${JSON.stringify(dtype)},"shape":[${v.length}],"data_offsets":[${offset},${offset + 4 * v.length}]}`;
    offset += 4 * v.length;
    return e;
  });
  const json = Buffer.from(`{${entries.join(',')}}`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...tensors.map(([, , v]) => Buffer.from(new Float32Array(v).buffer))]));
}

test('repro 8 and 21: a tensor named __proto__ or constructor is merged like any other; a dtype named toString or __proto__ is a clear error', async () => {
  const { planMerge, writeMerge } = await import('../src/merge/engine.js');
  const { mergeMethods } = await import('../src/merge/methods/index.js');
  const { readHeader } = await import('../src/checkpoint/safetensors.js');
  const ws = workspace();
  rawSafetensors(join(ws, 'a.safetensors'), [['__proto__', 'F32', [1, 2]], ['constructor', 'F32', [3]], ['w', 'F32', [5]]]);
  rawSafetensors(join(ws, 'b.safetensors'), [['__proto__', 'F32', [3, 4]], ['constructor', 'F32', [5]], ['w', 'F32', [7]]]);
  const method = mergeMethods.get('linear')!;
  const plan = planMerge({ models: [join(ws, 'a.safetensors'), join(ws, 'b.safetensors')], method, params: { normalize: true } });
  await writeMerge(plan, plan.groupNames.map(() => [0.5, 0.5]), join(ws, 'out'));
  const out = readHeader(join(ws, 'out', 'a.safetensors'));
  assert.deepEqual(out.tensors.map((t) => t.name).sort(), ['__proto__', 'constructor', 'w']);
  const buf = readFileSync(join(ws, 'out', 'a.safetensors'));
  const proto = out.tensors.find((t) => t.name === '__proto__')!;
  assert.deepEqual([...new Float32Array(new Uint8Array(buf.subarray(proto.offset, proto.offset + proto.bytes)).buffer)], [2, 3]);
  for (const dtype of ['toString', '__proto__', 'constructor']) {
    rawSafetensors(join(ws, 'bad.safetensors'), [['w', dtype, [1]]]);
    assert.throws(() => readHeader(join(ws, 'bad.safetensors')), new RegExp(`has dtype "${dtype}", which dfwe does not know`));
  }
});

test('repro 11: sweep variables, --only and --param named constructor, toString, hasOwnProperty, valueOf or __proto__ are names like any other', () => {
  const ws = workspace({
    'dfwe.yaml':
      'version: 1\nparams:\n  toString: 3\nsweep:\n  constructor: [a, b]\n  hasOwnProperty: [c]\nstages:\n  valueOf:\n' +
      '    cmd: echo ${{ constructor }} ${{ hasOwnProperty }} ${{ params.toString }} > o-${{ constructor }}.txt\n    outs: { o: "o-${{ constructor }}.txt" }\n',
  });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(read(ws, 'o-a.txt'), 'a c 3\n');
  assert.equal(dfwe(ws, ['run', '--only', 'constructor=b']).code, 0);
  for (const args of [['--only', 'valueOf=b'], ['--only', '__proto__=x'], ['--param', '__proto__=3'], ['--only', 'toString=a']]) {
    const bad = dfwe(ws, ['status', ...args]);
    assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
    assert.doesNotMatch(bad.stderr, /internal error/);
  }
});

function searchWorkspace(scorer: string): string {
  const ws = workspace({
    'dfwe.yaml': `version: 1\nstages:\n  search:\n    uses: merge-search\n    deps: [a.safetensors, b.safetensors]\n    with:\n      models: [a.safetensors, b.safetensors]\n      max_evals: 3\n${scorer}`,
  });
  writeFileSync(join(ws, 'a.safetensors'), oneTensorModel([1, 0]));
  writeFileSync(join(ws, 'b.safetensors'), oneTensorModel([0, 1]));
  return ws;
}

test('repro 17 and 19: a scorer that leaves a background child is not waited for, and a score_timeout past 24.8 days never fires early', () => {
  const ws = searchWorkspace(`      score: "sleep 40 & echo '{\\"score\\": 1}'"\n      score_timeout: 3\n`);
  const t0 = Date.now();
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms: the search waited for the background child`);
  assert.equal(JSON.parse(read(ws, 'out/search/search')).evaluations, 3);

  const server = searchWorkspace(`      score_server: "sleep 40 & while read l; do echo '{\\"score\\": 1}'; done"\n      score_timeout: 3\n`);
  const s0 = Date.now();
  const rs = dfwe(server, ['run']);
  assert.equal(rs.code, 0, rs.stderr);
  assert.ok(Date.now() - s0 < 15_000, `took ${Date.now() - s0} ms: the server's background child held the search`);

  const long = searchWorkspace(`      score: "echo '{\\"score\\": 1}'"\n      score_timeout: 2200000\n`);
  const rl = dfwe(long, ['run']);
  assert.equal(rl.code, 0, rl.stderr);
  assert.doesNotMatch(rl.stderr, /took longer than/);
});

test('repro 23: combinations(range(1414), 2) is said as 998,991 pairs, not as 1,997,982 elements', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nsweep:\n  p: "${{ combinations(range(1414), 2) }}"\nstages:\n  s:\n    cmd: echo ${{ p }}\n' });
  const r = dfwe(ws, ['status']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /combinations\(a list of 1414, 2\) would make 998,991 lists of 2 \(1,997,982 values\); the limit is 1,000,000 values/);
});

test('repro 10: arrays of any length are never spread into a call (a 135,000-file output, a 140,000-node sweep)', async () => {
  const { objectsOf } = await import('../src/cache/records.js');
  const { maxOf, pushAll } = await import('../src/util/arrays.js');
  const files = Array.from({ length: 300_000 }, (_, i) => ({ path: `f${i}`, digest: i.toString(16).padStart(32, '0'), size: 0, exec: false }));
  const digests = objectsOf({ outputs: { o: { path: 'out', kind: 'dir', digest: '0'.repeat(32), size: 0, files } } } as never);
  assert.equal(digests.length, 300_000);
  const big = Array.from({ length: 300_000 }, (_, i) => i);
  assert.equal(maxOf(big), 299_999);
  assert.equal(maxOf([], 0), 0);
  assert.equal(pushAll([], big).length, 300_000);
});

test('repro 14: run-history lines of valid JSON with wrong types are skipped by runs, diff and report, never a crash or a runaway page', () => {
  const ws = workspace({ 'dfwe.yaml': PIPE('  a:\n    cmd: echo ${{ params.n }} > a.txt\n    outs: { o: a.txt }\n').replace('stages:', 'params:\n  n: 1\nstages:') });
  assert.equal(dfwe(ws, ['run']).code, 0);
  assert.equal(dfwe(ws, ['run', '--param', 'n=2']).code, 0);
  const dir = join(ws, 'cache/runs');
  const file = join(dir, readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort()[1]!);
  const original = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
  const mutations: [string, (lines: Record<string, any>[]) => string][] = [
    ['averageDelta "x"', (ls) => lines(ls, (l) => l.t === 'end' && (l.report = { baseline: 'a', method: 'a', pairs: [], averageDelta: 'x' }))],
    ['git.commit 5', (ls) => lines(ls, (l) => l.t === 'start' && (l.git = { commit: 5, dirty: false }))],
    ['lane 1e9', (ls) => lines(ls, (l) => l.t === 'node' && (l.lane = 1e9))],
    ['ran "3"', (ls) => lines(ls, (l) => l.t === 'end' && (l.ran = '3'))],
    ['params 100,000 deep', (ls) => lines(ls).replace(/"params":\{[^}]*\}/, `"params":${deep}`)],
  ];
  for (const [what, mutate] of mutations) {
    writeFileSync(file, mutate(structuredClone(original)));
    for (const args of [['runs'], ['runs', '--json'], ['diff'], ['report', '-o', 'r.html']]) {
      const t0 = Date.now();
      const r = dfwe(ws, args);
      assert.ok(r.code === 0 || r.code === 2, `${what}: dfwe ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-400)}`);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at .*\.js:\d+/, `${what}: dfwe ${args.join(' ')}`);
      assert.ok(Date.now() - t0 < 20_000, `${what}: dfwe ${args.join(' ')} took ${Date.now() - t0} ms`);
    }
  }
});

/** History lines as text, each edited by `edit` first. */
function lines(ls: Record<string, any>[], edit: (l: Record<string, any>) => unknown = () => undefined): string {
  return ls.map((l) => (edit(l), JSON.stringify(l))).join('\n') + '\n';
}

test('repro 18: tensor-name globs match in time linear in the name (600,000 dots), and as the regular expressions did', async () => {
  const { globMatcher } = await import('../src/merge/patterns.js');
  const t0 = performance.now();
  assert.equal(globMatcher(['*.*.weight'])('.'.repeat(600_000)), false);
  assert.equal(globMatcher(['*.*.weight'])(`${'.'.repeat(600_000)}weight`), true);
  assert.ok(performance.now() - t0 < 5_000, `${performance.now() - t0} ms`);
  // Against the old regular expressions on small random names and patterns.
  const { Rng } = await import('../src/ml/random.js');
  const rng = new Rng('globs');
  const pick = (alphabet: string, n: number): string => Array.from({ length: n }, () => alphabet[rng.int(alphabet.length)]).join('');
  for (let i = 0; i < 20_000; i++) {
    const pattern = pick('ab.*?', rng.int(7));
    const name = pick('ab.', rng.int(9));
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    assert.equal(globMatcher([pattern])(name), re.test(name), `${pattern} ~ ${name}`);
  }
});

test('repro 9: a scorer server that answers twice per request fails the search, saying so; its answers are never credited to the next candidate', () => {
  const ws = searchWorkspace(`      score_server: "while read l; do echo '{\\"score\\": 1}'; echo '{\\"score\\": 2}'; done"\n`);
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 1);
  // The second answer is told as one when it is read before the next request goes out; when it
  // comes after (a fast machine), it is taken for the next candidate's, whose own answer then
  // comes with none waiting: the search fails either way, on whichever line that is.
  assert.match(r.stderr, /answered when no candidate was waiting for one \(\{"score": [12]\}\): it must answer each request with exactly one line/);
  assert.doesNotMatch(r.stderr, /^dfwe: .* 1 ran/m);
  // One whose extra answer comes after the last candidate was scored (here: once its input ends),
  // as a late second answer to the last request would: the search fails all the same.
  const late = searchWorkspace(`      score_server: "while read l; do echo '{\\"score\\": 1}'; done; echo '{\\"score\\": 2}'"\n`);
  const p = dfwe(late, ['run']);
  assert.equal(p.code, 1, p.stderr);
  assert.match(p.stderr, /answered when no candidate was waiting for one/);
  const echo = searchWorkspace(`      score_server: "while read l; do echo '{\\"candidate\\": 99, \\"score\\": 1}'; done"\n`);
  const e = dfwe(echo, ['run']);
  assert.equal(e.code, 1);
  assert.match(e.stderr, /was answered for candidate 99/);
});

test('repro 13: a scorer printing 600 MB without a newline, or 200,000 lines, is read in bounded memory: the line is cut, the log keeps the first lines', () => {
  const ws = searchWorkspace(
    `      score: "test -e once || { touch once; head -c 600000000 /dev/zero | tr '\\\\0' x; echo; seq 200000; }; echo '{\\"score\\": 1}'"\n`,
  );
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.equal(JSON.parse(read(ws, 'out/search/search')).evaluations, 3);
  const log = dfwe(ws, ['show', 'search', '--log']).stdout;
  assert.match(log, /x{100}… \(599934464 more characters of this line not kept\)/);
  assert.ok((log.match(/^.*score: \d+$/gm) ?? []).length < 1100, 'the log keeps the first lines only');
});

test('repro 20: a 3,000-character sweep value gives a default output directory within 255 bytes, distinct from its neighbour', () => {
  const long = 'v'.repeat(3000);
  const ws = workspace({ 'dfwe.yaml': `version: 1\nsweep:\n  x: [${long}, ${long}w, é${'é'.repeat(1500)}]\nstages:\n  s:\n    cmd: echo \${{ x }} > \${{ outs.o }}\n    outs: { o: ~ }\n` });
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr.slice(-500));
  const dirs = readdirSync(join(ws, 'out/s'));
  assert.equal(dirs.length, 3);
  for (const d of dirs) assert.ok(Buffer.byteLength(d) <= 255, d);
});

test('repro 12: an index.json nested 100,000 deep and a tensor too large for ties\' scratch array are clear stage errors, not crashes', async () => {
  const { openCheckpoint } = await import('../src/checkpoint/checkpoint.js');
  const { allocFloat32 } = await import('../src/merge/alloc.js');
  const ws = workspace();
  const dir = join(ws, 'model');
  mkdirSync(dir);
  rawSafetensors(join(dir, 'model-00001-of-00001.safetensors'), [['w', 'F32', [1]]]);
  const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
  writeFileSync(join(dir, 'model.safetensors.index.json'), `{"metadata": ${deep}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}`);
  assert.throws(() => openCheckpoint(dir), (err: Error) => err.constructor.name === 'StageInputError' && /nested more than 64 levels deep/.test(err.message));
  assert.throws(() => allocFloat32(2 ** 34, 'ties: tensor "huge"'), (err: Error) => err.constructor.name === 'StageInputError' && /ties: tensor "huge" has 17,179,869,184 elements, and its scratch array \(64\.0 GiB\) cannot be allocated here/.test(err.message));
});
