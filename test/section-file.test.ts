import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSections, encodeSections, type SectionFormat } from '../src/util/section-file.js';

/** A format with the snapshot's kinds of column. */
const FORMAT: SectionFormat = { magic: 'dfwetest', columns: { ids: 'json', planKeys: 'json', reads: 'json', paths: 'json', stageOf: 'u32', structural: 'u32', stats: 'f64' } };
const encode = (o: object): Buffer => encodeSections(FORMAT, o);
const decode = (b: Buffer): Record<string, unknown> | undefined => decodeSections(FORMAT, b);
import { dfwe, dfweTraced, workspace } from './helpers.js';

const SAMPLE = {
  format: 10,
  expansionKey: 'k',
  header: { name: 'ünïcode', nodes: 2 },
  served: undefined,
  ids: ['a[x=1]', 'b[x=naïve\n"quoted"]'],
  planKeys: ['0'.repeat(32), 'f'.repeat(32)],
  reads: ['', 'a[x=1]\0f\n'],
  paths: ['src/in.txt', 'out/é'],
  stageOf: Uint32Array.from([0, 1]),
  structural: Uint32Array.from([1]),
  stats: Float64Array.from([1, 2, 3, 1733500000123.4567, 5, 6, 7, 8, 9, -0.5]),
};

test('a snapshot file gives back what was written: strings in any script, numbers to the bit, small fields in the head', () => {
  const back = decode(encode(SAMPLE))!;
  assert.ok(back, 'decoded');
  const { served: _, ...written } = SAMPLE;
  assert.deepEqual(back, written);
  assert.ok(back.stats instanceof Float64Array && back.stageOf instanceof Uint32Array, 'number columns come back as typed arrays');
});

test('number columns are read in place from an aligned file, and copied from one that is not', () => {
  const bytes = encode(SAMPLE);
  const aligned = Buffer.from(new Uint8Array(bytes)); // its own ArrayBuffer, offset 0
  const inPlace = decode(aligned)!;
  assert.equal((inPlace.stats as Float64Array).buffer, aligned.buffer, 'a view of the file, not a copy');
  // The same bytes at an odd offset within a larger buffer.
  const holder = Buffer.alloc(bytes.length + 3);
  bytes.copy(holder, 3);
  const odd = decode(holder.subarray(3))!;
  assert.deepEqual(Array.from(odd.stats as Float64Array), Array.from(SAMPLE.stats));
  assert.deepEqual(Array.from(odd.structural as Uint32Array), [1]);
});

test('a file that is not a whole snapshot file is no snapshot: truncated, another format, a section out of bounds', () => {
  const bytes = encode(SAMPLE);
  // Each in a buffer of its own, as a file read is: a slice of a larger one would let a view read past its end.
  const own = (b: Uint8Array): Buffer => Buffer.from(new Uint8Array(b).buffer);
  for (let cut = 0; cut < bytes.length; cut += 7) assert.equal(decode(own(bytes.subarray(0, cut))), undefined, `cut at ${cut}`);
  assert.equal(decode(Buffer.from(JSON.stringify({ format: 9 }))), undefined);
  const headLength = bytes.readUInt32LE(8);
  const head = JSON.parse(bytes.toString('utf8', 16, 16 + headLength));
  for (const bad of [[1 << 20, 8, 'f64'], [4, 8, 'f64'], [0, 12, 'f64'], [0, 8, 'text'], [0, 8, 'bytes'], [0, 8, 'u32']]) {
    const text = Buffer.from(JSON.stringify({ ...head, sections: { ...head.sections, stats: bad } }));
    const patched = Buffer.concat([bytes.subarray(0, 8), Buffer.alloc(8), text, Buffer.alloc(8 - ((16 + text.length) % 8 || 8)), bytes.subarray((16 + headLength + 7) & ~7)]);
    patched.writeUInt32LE(text.length, 8);
    assert.equal(decode(own(patched)), undefined, `stats section ${JSON.stringify(bad)}`);
  }
});

test('a damaged snapshot is ignored: the command plans in full, says the same, and writes a whole one again', () => {
  const ws = workspace({ 'dfwe.yaml': 'version: 1\nstages:\n  a:\n    cmd: echo hi > ${{ outs.f }}\n    outs: { f: out/f }\n' });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const dir = join(ws, 'cache/state/snapshots');
  const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.snap'))!);
  const whole = readFileSync(file);
  writeFileSync(file, whole.subarray(0, whole.length - 9));
  const s = dfweTraced(ws, ['status']);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /1 nodes: 1 cached, 0 will run/);
  assert.ok(s.modules.some((m) => /\/dist\/src\/engine\/plan\.js$/.test(m)), 'planned in full');
  const again = dfweTraced(ws, ['status']);
  assert.match(again.stdout, /1 nodes: 1 cached, 0 will run/);
  assert.ok(!again.modules.some((m) => /\/dist\/src\/engine\/plan\.js$/.test(m)), 'the next one is told from the snapshot written again');
});

test('a bytes column comes back as the bytes written, a view of the file (the expansion memo decodes a few nodes of it)', () => {
  const format: SectionFormat = { magic: 'dfwetest', columns: { text: 'bytes', at: 'u32' } };
  const text = Buffer.from('["naïve",{"a":1}]', 'utf8');
  const file = encodeSections(format, { name: 'x', text, at: Uint32Array.from([1, 10]) });
  const back = decodeSections(format, file)!;
  assert.ok(Buffer.isBuffer(back.text));
  assert.equal((back.text as Buffer).buffer, file.buffer, 'a view, not a copy');
  assert.deepEqual(back.text, text);
  assert.equal(back.name, 'x');
});
