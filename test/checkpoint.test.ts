import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../src/checkpoint/checkpoint.js';
import { decode, encode } from '../src/checkpoint/dtype.js';
import { readHeader } from '../src/checkpoint/safetensors.js';
import { planMerge, writeMerge } from '../src/merge/engine.js';
import { mergeMethods } from '../src/merge/methods/index.js';
import { workspace } from './helpers.js';

/*
 * Checkpoints are written here by hand from the format's description (8-byte little-endian
 * header length, JSON header, raw little-endian data), not by dfwe's writer, so the reader is
 * checked against the format rather than against itself.
 */

type T = { dtype: 'F32' | 'F16' | 'BF16' | 'I64'; shape: number[]; data: Uint8Array };

function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function writeSafetensors(path: string, tensors: Record<string, T>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(t.data))]));
}

function tensorsOf(path: string): Record<string, { dtype: string; shape: number[]; values: number[] }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString()) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out: Record<string, { dtype: string; shape: number[]; values: number[] }> = {};
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1]);
    const copy = new Uint8Array(bytes);
    const values = h.dtype === 'F32' ? [...new Float32Array(copy.buffer)] : h.dtype === 'I64' ? [...new BigInt64Array(copy.buffer)].map(Number) : [...decode(copy, h.dtype as 'F16' | 'BF16')];
    out[name] = { dtype: h.dtype, shape: h.shape, values };
  }
  return out;
}

test('float16: every bit pattern decodes and encodes back to itself; rounding is to nearest even', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = new Uint16Array(encode(decode(new Uint8Array(all.buffer), 'F16'), 'F16').buffer);
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.equal((back[h]! & 0x7c00) === 0x7c00 && (back[h]! & 0x3ff) !== 0, true, `NaN ${h} stays NaN`);
    else assert.equal(back[h], h, `0x${h.toString(16)}`);
  }
  const half = (x: number): number => decode(encode(new Float32Array([x]), 'F16'), 'F16')[0]!;
  assert.equal(half(2049), 2048, 'a tie rounds to even (down)');
  assert.equal(half(2051), 2052, 'a tie rounds to even (up)');
  assert.equal(half(65520), Infinity, 'past the largest half overflows');
  assert.equal(half(65504), 65504);
  assert.equal(half(2 ** -24), 2 ** -24, 'the smallest subnormal');
  assert.equal(half(2 ** -26), 0, 'below half of it, zero');
  assert.equal(half(-0.1), -0.0999755859375);
});

test('bfloat16: every bit pattern round-trips; float32 rounds to nearest even', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = new Uint16Array(encode(decode(new Uint8Array(all.buffer), 'BF16'), 'BF16').buffer);
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    if (!isNaN) assert.equal(back[h], h, `0x${h.toString(16)}`);
  }
  const bf = (x: number): number => decode(encode(new Float32Array([x]), 'BF16'), 'BF16')[0]!;
  assert.equal(bf(1 + 2 ** -8), 1, 'halfway rounds to even');
  assert.equal(bf(1 + 3 * 2 ** -8), 1 + 2 ** -6, 'halfway rounds to even (up)');
  assert.equal(bf(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7, 'above halfway rounds up');
  assert.ok(Number.isNaN(bf(NaN)));
});

test('a truncated or malformed file names the file and what is wrong', () => {
  const ws = workspace();
  const good = join(ws, 'good.safetensors');
  writeSafetensors(good, { w: { dtype: 'F32', shape: [2, 2], data: f32([1, 2, 3, 4]) } });
  assert.deepEqual(readHeader(good).tensors.map((t) => [t.name, t.dtype, t.shape, t.bytes]), [['w', 'F32', [2, 2], 16]]);
  const cut = join(ws, 'cut.safetensors');
  writeFileSync(cut, readFileSync(good));
  truncateSync(cut, readFileSync(good).length - 4);
  assert.throws(() => readHeader(cut), /cut\.safetensors: not a valid safetensors file: tensor "w" ends at byte \d+, past the end of the file \(\d+ bytes: truncated\?\)/);
  const tiny = join(ws, 'tiny.safetensors');
  writeFileSync(tiny, Buffer.from([1, 2, 3]));
  assert.throws(() => readHeader(tiny), /tiny\.safetensors: .*3 bytes long, shorter than the 8-byte header length/);
  const long = join(ws, 'long.safetensors');
  const lead = Buffer.alloc(8);
  lead.writeBigUInt64LE(1000n);
  writeFileSync(long, Buffer.concat([lead, Buffer.from('{}')]));
  assert.throws(() => readHeader(long), /long\.safetensors: .*header would be 1000 bytes, but the file is 10 bytes/);
  const lying = join(ws, 'lying.safetensors');
  writeSafetensors(lying, { w: { dtype: 'F32', shape: [3], data: f32([1, 2, 3, 4]) } });
  assert.throws(() => readHeader(lying), /lying\.safetensors: .*tensor "w" \(F32 \[3\]\) needs 12 bytes, its offsets give 16/);
  const notJson = join(ws, 'json.safetensors');
  lead.writeBigUInt64LE(3n);
  writeFileSync(notJson, Buffer.concat([lead, Buffer.from('{x:')]));
  assert.throws(() => readHeader(notJson), /json\.safetensors: .*header is not JSON/);
});

/** A Hugging Face style directory: config, tokenizer, a stale .bin, and weights in one file or in shards. */
function hfModel(dir: string, tensors: Record<string, T>, shards?: Record<string, string[]>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{"model_type": "toy"}\n');
  writeFileSync(join(dir, 'tokenizer.json'), '{"vocab": ["a"]}\n');
  writeFileSync(join(dir, 'pytorch_model.bin'), 'stale weights of another format');
  if (!shards) return writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const weightMap: Record<string, string> = {};
  for (const [file, names] of Object.entries(shards)) {
    writeSafetensors(join(dir, file), Object.fromEntries(names.map((n) => [n, tensors[n]!])), { format: 'pt' });
    for (const n of names) weightMap[n] = file;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 40 }, weight_map: weightMap }));
}

const method = (name: string) => mergeMethods.get(name)!;

test('a sharded Hugging Face checkpoint in, the same layout out: shards, index, config and tokenizer', async () => {
  const ws = workspace();
  const shards = { 'model-00001-of-00002.safetensors': ['a.weight', 'pos'], 'model-00002-of-00002.safetensors': ['b.weight'] };
  const mk = (x: number) => ({
    'a.weight': { dtype: 'F32' as const, shape: [2], data: f32([x, 2 * x]) },
    pos: { dtype: 'I64' as const, shape: [2], data: new Uint8Array(new BigInt64Array([0n, 1n]).buffer) },
    'b.weight': { dtype: 'F16' as const, shape: [3], data: encode(new Float32Array([x, -x, 0.5]), 'F16') },
  });
  hfModel(join(ws, 'm1'), mk(1), shards);
  hfModel(join(ws, 'm2'), mk(3), shards);
  const plan = planMerge({ models: [join(ws, 'm1'), join(ws, 'm2')], method: method('linear'), params: { normalize: true } });
  await writeMerge(plan, [[0.5, 0.5]], join(ws, 'out'));
  assert.deepEqual(readdirSync(join(ws, 'out')).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json']);
  assert.deepEqual(JSON.parse(readFileSync(join(ws, 'out/model.safetensors.index.json'), 'utf8')).weight_map, JSON.parse(readFileSync(join(ws, 'm1/model.safetensors.index.json'), 'utf8')).weight_map);
  const s1 = tensorsOf(join(ws, 'out/model-00001-of-00002.safetensors'));
  assert.deepEqual(s1['a.weight'], { dtype: 'F32', shape: [2], values: [2, 4] });
  assert.deepEqual(s1.pos, { dtype: 'I64', shape: [2], values: [0, 1] }, 'integer buffers are copied, not merged');
  assert.deepEqual(tensorsOf(join(ws, 'out/model-00002-of-00002.safetensors'))['b.weight'], { dtype: 'F16', shape: [3], values: [2, -2, 0.5] });
  assert.equal(readFileSync(join(ws, 'out/config.json'), 'utf8'), '{"model_type": "toy"}\n');
  assert.deepEqual(openCheckpoint(join(ws, 'out')).index?.weight_map, openCheckpoint(join(ws, 'm1')).index?.weight_map);
});

test('merging identical models gives back their exact bytes, in F32, F16 and BF16', async () => {
  const ws = workspace();
  const values = new Float32Array(5000).map((_, i) => Math.sin(i) * 3);
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const data = dtype === 'F32' ? new Uint8Array(values.buffer.slice(0)) : encode(values, dtype);
    for (const m of ['a', 'b', 'c']) writeSafetensors(join(ws, `${dtype}-${m}.safetensors`), { w: { dtype, shape: [5000], data } });
    const plan = planMerge({ models: ['a', 'b', 'c'].map((m) => join(ws, `${dtype}-${m}.safetensors`)), method: method('linear'), params: { normalize: true } });
    await writeMerge(plan, [[0.2, 0.3, 0.5]], join(ws, `out-${dtype}`));
    assert.deepEqual(readFileSync(join(ws, `out-${dtype}`, `${dtype}-a.safetensors`)).subarray(-data.byteLength), Buffer.from(data), dtype);
  }
});

test('mismatched models are rejected with the tensor and both models named', () => {
  const ws = workspace();
  writeSafetensors(join(ws, 'a.safetensors'), { x: { dtype: 'F32', shape: [2], data: f32([1, 2]) }, y: { dtype: 'F32', shape: [1], data: f32([1]) } });
  writeSafetensors(join(ws, 'short.safetensors'), { x: { dtype: 'F32', shape: [2], data: f32([1, 2]) } });
  writeSafetensors(join(ws, 'wide.safetensors'), { x: { dtype: 'F32', shape: [1, 2], data: f32([1, 2]) }, y: { dtype: 'F32', shape: [1], data: f32([1]) } });
  writeSafetensors(join(ws, 'half.safetensors'), { x: { dtype: 'F16', shape: [2], data: encode(new Float32Array([1, 2]), 'F16') }, y: { dtype: 'F32', shape: [1], data: f32([1]) } });
  writeSafetensors(join(ws, 'more.safetensors'), { x: { dtype: 'F32', shape: [2], data: f32([1, 2]) }, y: { dtype: 'F32', shape: [1], data: f32([1]) }, z: { dtype: 'F32', shape: [1], data: f32([0]) } });
  const merge = (other: string) => planMerge({ models: [join(ws, 'a.safetensors'), join(ws, other)], method: method('linear'), params: { normalize: true }, labels: ['a.safetensors', other] });
  assert.throws(() => merge('short.safetensors'), /tensor "y" is in a\.safetensors but not in short\.safetensors/);
  assert.throws(() => merge('wide.safetensors'), /tensor "x" has shape \[1,2\] in wide\.safetensors and \[2\] in a\.safetensors/);
  assert.throws(() => merge('half.safetensors'), /tensor "x" is F16 in half\.safetensors and F32 in a\.safetensors/);
  assert.throws(() => merge('more.safetensors'), /more\.safetensors has tensor "z" that a\.safetensors lacks/);
  assert.throws(() => planMerge({ models: [join(ws, 'a.safetensors')], method: method('ties'), params: {} }), /method ties needs a base model/);
  assert.throws(() => planMerge({ models: [join(ws, 'a.safetensors')], method: method('slerp'), params: {} }), /method slerp merges exactly 2 models, not 1/);
});
