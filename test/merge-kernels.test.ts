import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode, encode } from '../src/checkpoint/dtype.js';
import { closeMerge, planMerge, writeMerge } from '../src/merge/engine.js';
import { KernelMemory } from '../src/merge/kernels.js';
import { mergeMethods } from '../src/merge/methods/index.js';
import { weightedSumJs } from '../src/merge/weighted-sum.js';
import { Rng } from '../src/ml/random.js';
import { reference, table, type Half } from './float-formats.js';
import { workspace } from './helpers.js';

/*
 * The SIMD kernels against references written independently of them: rounding against a search
 * over every value of the format (with infinity where the format's range ends), decoding against
 * the lookup table, sums against the same sums in JavaScript; and a merge's bytes are the same
 * for one thread and for several.
 */

/** Values that test rounding where it is hard: midpoints (ties) and their neighbours, subnormals, overflow. */
function hardValues(dtype: Half, rng: Rng): Float64Array {
  const t = table(dtype);
  const out: number[] = [0, -0, Number.MIN_VALUE, -Number.MIN_VALUE, 1e300, -1e300, Infinity, -Infinity];
  const finite = t.values.slice(1, -1);
  for (let s = 0; s < 6000; s++) {
    const i = rng.int(finite.length - 1);
    const mid = (finite[i]! + finite[i + 1]!) / 2;
    out.push(mid, nextUp(mid), nextDown(mid), finite[i]!);
  }
  // Around the largest finite value: its midpoint with infinity is a tie that goes to infinity.
  const max = finite[finite.length - 1]!;
  const top = dtype === 'F16' ? 2 ** 16 : 2 ** 128;
  for (const v of [max, (max + top) / 2, nextDown((max + top) / 2), nextUp((max + top) / 2), top, top * 4]) out.push(v, -v);
  // Subnormals and below: every subnormal's midpoints, and values far under the smallest.
  const tiny = dtype === 'F16' ? 2 ** -24 : 2 ** -133;
  for (let m = 0; m < 1100; m++) out.push((m + 0.5) * tiny, -(m + 0.5) * tiny, tiny / 4, tiny / 2, -tiny / 2);
  // Random magnitudes over the whole range.
  for (let s = 0; s < 20000; s++) out.push((rng.next() < 0.5 ? -1 : 1) * 2 ** (rng.next() * (dtype === 'F16' ? 48 : 280) - (dtype === 'F16' ? 30 : 140)) * (1 + rng.next()));
  return Float64Array.from(out);
}

function nextUp(v: number): number {
  const b = new BigInt64Array(Float64Array.of(v).buffer);
  b[0] = v >= 0 ? b[0]! + 1n : b[0]! - 1n;
  return new Float64Array(b.buffer)[0]!;
}

function nextDown(v: number): number {
  return -nextUp(-v);
}

for (const dtype of ['F16', 'BF16'] as const) {
  test(`${dtype}: the kernel rounds float64 once and correctly: ties to even, subnormals, overflow to infinity, signed zeros`, () => {
    const values = hardValues(dtype, new Rng(`kernels:${dtype}`));
    const t = table(dtype);
    const memory = new KernelMemory(1, 1 << 14);
    let wrong = 0;
    const examples: string[] = [];
    for (let start = 0; start < values.length; start += memory.chunk) {
      // Odd lengths too: the tail goes through the same arithmetic.
      const n = Math.min(memory.chunk - 3, values.length - start);
      memory.acc.set(values.subarray(start, start + n));
      const got = new Uint16Array(memory.encode(dtype, n).slice().buffer);
      for (let j = 0; j < n; j++) {
        const want = reference(values[start + j]!, t);
        if (got[j] !== want) {
          wrong++;
          if (examples.length < 5) examples.push(`${values[start + j]} → ${got[j]!.toString(16)}, want ${want.toString(16)}`);
        }
      }
      if (n < memory.chunk) start -= memory.chunk - n;
    }
    assert.equal(wrong, 0, `${wrong} of ${values.length} values rounded wrong: ${examples.join('; ')}`);
  });

  test(`${dtype}: a merge of random tensors (ties, subnormals, overflow) is correctly rounded in every element`, async () => {
    const ws = workspace();
    const t = table(dtype);
    const finite = t.values.slice(1, -1);
    const rng = new Rng(`merge-kernels:${dtype}`);
    const n = 30011;
    const a = new Float32Array(n);
    const b = new Float32Array(n);
    // A third input nudges some ties by less than a float32 can hold: rounded twice (through
    // float32), the nudge is lost and the tie goes to even; rounded once, it decides.
    const c = new Float32Array(n);
    const max = finite[finite.length - 1]!;
    for (let i = 0; i < n; i++) {
      const kind = i % 4;
      const x = finite[rng.int(finite.length)]!;
      if (kind === 0) {
        // A value and half a unit of it: an exact tie.
        const j = finite.indexOf(x);
        a[i] = x;
        b[i] = j + 1 < finite.length ? (finite[j + 1]! - x) / 2 : 0;
        if (i % 8 === 0) c[i] = (rng.next() < 0.5 ? -1 : 1) * Math.abs(x) * 2 ** -30;
      } else if (kind === 1) {
        // Subnormal neighbours.
        a[i] = finite[(finite.length >> 1) + rng.int(40) - 20]!;
        b[i] = finite[(finite.length >> 1) + rng.int(40) - 20]!;
      } else if (kind === 2) {
        // Near the top: sums past the largest value.
        a[i] = max - rng.int(4) * (dtype === 'F16' ? 32 : 2 ** 120);
        b[i] = rng.next() * max;
      } else {
        a[i] = x;
        b[i] = finite[rng.int(finite.length)]!;
      }
    }
    // Every input is a value of the format (b's halves are too, except where the format cannot hold them: those are checked below).
    const bytesA = encode(a, dtype);
    const bytesB = encode(b, dtype);
    const bytesC = encode(c, dtype);
    const va = decode(bytesA, dtype);
    const vb = decode(bytesB, dtype);
    const vc = decode(bytesC, dtype);
    const save = (path: string, bytes: Uint8Array): void => {
      const header = Buffer.from(JSON.stringify({ w: { dtype, shape: [n], data_offsets: [0, bytes.length] } }));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      writeFileSync(path, Buffer.concat([len, header, bytes]));
    };
    save(join(ws, 'a.safetensors'), bytesA);
    save(join(ws, 'b.safetensors'), bytesB);
    save(join(ws, 'c.safetensors'), bytesC);
    const plan = planMerge({ models: ['a', 'b', 'c'].map((m) => join(ws, `${m}.safetensors`)), method: mergeMethods.get('linear')!, params: { normalize: false } });
    await writeMerge(plan, [[1, 1, 1]], join(ws, 'out'));
    const buf = readFileSync(join(ws, 'out', 'a.safetensors'));
    const got = new Uint16Array(new Uint8Array(buf.subarray(8 + Number(buf.readBigUInt64LE(0)))).buffer);
    let wrong = 0;
    let ties = 0;
    let infinite = 0;
    let subnormal = 0;
    let nudged = 0;
    for (let i = 0; i < n; i++) {
      const exact = 0 + va[i]! + vb[i]! + vc[i]!;
      const want = reference(exact, t);
      if (got[i] !== want) wrong++;
      if ((want & 0x7fff) === (dtype === 'F16' ? 0x7c00 : 0x7f80)) infinite++;
      if ((want & 0x7fff) !== 0 && (want & (dtype === 'F16' ? 0x7c00 : 0x7f80)) === 0) subnormal++;
      const r = t.values.indexOf(exact);
      if (vc[i] !== 0 && Math.fround(exact) === va[i]! + vb[i]!) nudged++;
      if (r < 0 && Number.isFinite(exact) && reference(nextUp(exact), t) !== reference(nextDown(exact), t)) ties++;
    }
    assert.equal(wrong, 0, `${wrong} of ${n} merged elements are not the correctly rounded sum`);
    // The cases the test is for did occur.
    assert.ok(ties > 1000 && infinite > 100 && subnormal > 100 && nudged > 100, `ties ${ties}, infinite ${infinite}, subnormal ${subnormal}, nudged ${nudged}`);
  });

  test(`${dtype}: the decoding kernel gives every bit pattern's value`, () => {
    const memory = new KernelMemory(1, 1 << 16);
    const all = new Uint16Array(65536).map((_, i) => i);
    memory.slots[0]!.raw.set(new Uint8Array(all.buffer));
    const got = memory.decode(0, dtype, 65536);
    const want = decode(new Uint8Array(all.buffer), dtype);
    for (let i = 0; i < 65536; i++) {
      if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])))) assert.fail(`${dtype} bits ${i.toString(16)}: ${got[i]}, want ${want[i]}`);
    }
  });
}

test('the weighted-sum kernel gives the same bits as the sums in JavaScript, any length, with and without a base, from F32, BF16 and F16', () => {
  const rng = new Rng('kernels:sum');
  const memory = new KernelMemory(7, 1 << 12);
  const want = new Float64Array(memory.chunk);
  for (const dtype of ['F32', 'BF16', 'F16'] as const) {
    for (const s of memory.slots) {
      for (let i = 0; i < s.f32.length; i++) s.f32[i] = (rng.next() - 0.5) * 2 ** (rng.int(dtype === 'F16' ? 12 : 40) - (dtype === 'F16' ? 8 : 20));
      s.f32[5] = Infinity;
      s.f32[9] = 2 ** -20;
      if (dtype !== 'F32') s.raw.set(encode(s.f32, dtype));
    }
    memory.slots[3]!.f32[7] = NaN;
    // The inputs as the kernel reads them (f32 arrays, or 16-bit bytes), and as values for the reference.
    const inputs = memory.slots.map((s) => (dtype === 'F32' ? s.f32 : s.raw));
    const values = memory.slots.map((s) => (dtype === 'F32' ? s.f32 : decode(s.raw.subarray(0, memory.chunk * 2), dtype)));
    for (const k of [1, 2, 3, 5, 6]) {
      for (const n of [1, 3, 4, 7, 64, 1001, memory.chunk]) {
        for (const withBase of [false, true]) {
          const ws = Array.from({ length: k }, () => rng.next() * 2 - 0.5);
          memory.weightedSum(memory.acc, inputs.slice(0, k), ws, n, withBase ? inputs[6] : undefined, dtype);
          weightedSumJs(want, values.slice(0, k).map((v) => v.subarray(0, n)), ws, n, withBase ? values[6]!.subarray(0, n) : undefined);
          for (let j = 0; j < n; j++) {
            const [g, w] = [memory.acc[j]!, want[j]!];
            if (!(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)))) assert.fail(`${dtype}, k ${k}, n ${n}, base ${withBase}, element ${j}: ${g} ≠ ${w}`);
          }
        }
      }
    }
  }
});

test('a merge writes the same bytes with one thread and with two: linear in F16, ties in BF16, dare in F32', async () => {
  const ws = workspace();
  const rng = new Rng('kernels:threads');
  // 6M elements: enough for the merge to use two threads (4M elements per thread at least).
  const shape = [1500, 4000];
  const n = shape[0]! * shape[1]!;
  const values = new Float32Array(n);
  const cases = [
    { dtype: 'F16', method: 'linear', params: { normalize: true }, weights: [0.2, 0.3, 0.5] },
    { dtype: 'BF16', method: 'ties', params: { density: 0.3, lambda: 1 }, weights: [1, 0.5, 0.7] },
    { dtype: 'F32', method: 'dare', params: { density: 0.5, lambda: 1, seed: 3 }, weights: [1, 1, 1] },
  ] as const;
  for (const c of cases) {
    const paths = ['m0', 'm1', 'm2', 'base'].map((m) => {
      for (let i = 0; i < n; i++) values[i] = (rng.next() - 0.5) * 0.1;
      const bytes = c.dtype === 'F32' ? new Uint8Array(values.buffer.slice(0)) : encode(values, c.dtype);
      const header = Buffer.from(JSON.stringify({ 'a.weight': { dtype: c.dtype, shape, data_offsets: [0, bytes.length] }, 'b.weight': { dtype: c.dtype, shape: [3, 5], data_offsets: [bytes.length, bytes.length + 15 * (c.dtype === 'F32' ? 4 : 2)] } }));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      const path = join(ws, `${c.dtype}-${m}.safetensors`);
      writeFileSync(path, Buffer.concat([len, header, bytes, bytes.subarray(0, 15 * (c.dtype === 'F32' ? 4 : 2))]));
      return path;
    });
    const plan = planMerge({ models: paths.slice(0, 3), base: c.method === 'linear' ? undefined : paths[3], method: mergeMethods.get(c.method)!, params: { ...c.params } });
    const one = await writeMerge(plan, [[...c.weights]], join(ws, `${c.dtype}-one`), { threads: 1 });
    const two = await writeMerge(plan, [[...c.weights]], join(ws, `${c.dtype}-two`), { threads: 2 });
    await closeMerge(plan);
    assert.deepEqual([one.threads, two.threads], [1, 2], c.method);
    const a = readFileSync(join(ws, `${c.dtype}-one`, `${c.dtype}-m0.safetensors`));
    const b = readFileSync(join(ws, `${c.dtype}-two`, `${c.dtype}-m0.safetensors`));
    assert.equal(a.length, b.length);
    assert.ok(a.equals(b), `${c.method} ${c.dtype}: the bytes differ between one thread and two`);
    // And the merge is not the first model copied.
    assert.ok(!a.equals(readFileSync(paths[0]!)), `${c.method} ${c.dtype}: merged nothing`);
  }
});
