import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planMerge, writeMerge } from '../src/merge/engine.js';
import { mergeMethods } from '../src/merge/methods/index.js';
import { encode } from '../src/checkpoint/dtype.js';
import { Rng } from '../src/ml/random.js';
import { reference, table as formatTable } from './float-formats.js';
import { workspace } from './helpers.js';

/*
 * A merge is rounded once (issue 25): the float64 sum goes straight to the output's dtype,
 * nearest, ties to even. The repro: three F16 tensors of 300×70 merged with weights
 * [0.2, 0.3, 0.5] left 29 of 21,000 elements one unit off (float64 → float32 → float16).
 * The reference (float-formats.ts) rounds by searching every value of the format, not by bit tricks.
 */

function safetensors(path: string, dtype: string, shape: number[], raw: Uint8Array): void {
  const header = Buffer.from(JSON.stringify({ w: { dtype, shape, data_offsets: [0, raw.length] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(path, Buffer.concat([len, header, raw]));
}

for (const dtype of ['F16', 'BF16'] as const) {
  test(`a ${dtype} merge is the float64 sum rounded once: three 300×70 tensors, weights [0.2, 0.3, 0.5], every element exact`, async () => {
    const ws = workspace();
    const table = formatTable(dtype);
    const rng = new Rng(`exact-rounding:${dtype}`);
    const n = 300 * 70;
    const inputs = [0, 1, 2].map(() => {
      // Inputs are values of the format itself: random bits of finite, moderate values.
      const raw = new Uint16Array(n);
      for (let i = 0; i < n; i++) raw[i] = table.bits[(table.values.length >> 2) + rng.int(table.values.length >> 1)]!;
      return raw;
    });
    const decode = (b: number): number => table.values[table.bits.indexOf(b)]!;
    const value = new Map<number, number>();
    const of = (b: number): number => value.get(b) ?? (value.set(b, decode(b)), value.get(b)!);
    inputs.forEach((raw, i) => safetensors(join(ws, `m${i}.safetensors`), dtype, [300, 70], new Uint8Array(raw.buffer)));
    const plan = planMerge({ models: [0, 1, 2].map((i) => join(ws, `m${i}.safetensors`)), method: mergeMethods.get('linear')!, params: { normalize: true } });
    const w = [0.2, 0.3, 0.5];
    await writeMerge(plan, [w], join(ws, 'out'));
    const buf = readFileSync(join(ws, 'out', 'm0.safetensors'));
    const hlen = Number(buf.readBigUInt64LE(0));
    const out = new Uint16Array(new Uint8Array(buf.subarray(8 + hlen)).buffer);
    let off = 0;
    for (let i = 0; i < n; i++) {
      // The merge's own float64 sum, in its order: 0 + w0·x0 + w1·x1 + w2·x2.
      const exact = 0 + w[0]! * of(inputs[0]![i]!) + w[1]! * of(inputs[1]![i]!) + w[2]! * of(inputs[2]![i]!);
      if (out[i] !== reference(exact, table)) off++;
    }
    assert.equal(off, 0, `${off} of ${n} elements are not the correctly rounded sum`);
  });
}

test('the issue\'s element: 0.16497802734374994 is 0.1649169921875 in F16, not 0.1650390625', () => {
  const bits = new Uint16Array(encode(Float64Array.of(0.16497802734374994), 'F16').buffer);
  const table = formatTable('F16');
  assert.equal(table.values[table.bits.indexOf(bits[0]!)], 0.1649169921875);
});
