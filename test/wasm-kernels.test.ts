import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTf } from '../src/ml/tf.js';
import { Rng } from '../src/ml/random.js';

/** dfwe's own wasm kernels (src/ml/tf.ts) against tfjs's cpu backend: exact ops, so exactly equal. */
test('the wasm row-copy gather and broadcasting equal give exactly what the cpu backend gives', async () => {
  const tf = await loadTf('wasm');
  const rng = new Rng('kernels');
  const floats = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.round(rng.normal() * 4) / 4);
  const onBoth = async (f: () => TF_Tensor): Promise<[number[], number[], number[], number[]]> => {
    const results: [number[], number[]][] = [];
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      const t = f();
      results.push([[...t.shape], Array.from(t.dataSync() as ArrayLike<number>)]);
      t.dispose();
    }
    await tf.setBackend('wasm');
    return [results[0]![0], results[0]![1], results[1]![0], results[1]![1]];
  };
  type TF_Tensor = ReturnType<typeof tf.tensor>;
  const table = floats(50 * 6);
  const ids = Int32Array.from({ length: 37 }, () => Math.floor(rng.next() * 50));
  for (const idsShape of [[37], [1, 37]]) {
    const [ws, wv, cs, cv] = await onBoth(() => tf.gather(tf.tensor2d(table, [50, 6]), tf.tensor(ids, idsShape, 'int32')));
    assert.deepEqual(ws, cs);
    assert.deepEqual(wv, cv, `gather with indices of shape ${idsShape}`);
  }
  await tf.setBackend('wasm');
  assert.throws(() => tf.gather(tf.tensor2d(table, [50, 6]), tf.tensor1d([3, 50], 'int32')).dataSync(), /index value 50 is not in \[0, 49\]/);
  const shapes: [number[], number[]][] = [[[4, 5, 6], [4, 1, 6]], [[4, 5, 6], [6]], [[4, 1, 6], [4, 5, 1]], [[3, 4], [3, 4]], [[], [2, 3]], [[2, 1], []]];
  for (const [sa, sb] of shapes) {
    const na = sa.reduce((p, d) => p * d, 1);
    const nb = sb.reduce((p, d) => p * d, 1);
    const a = floats(na);
    // b reuses a's values so that some pairs are equal.
    const b = Float32Array.from({ length: nb }, (_, i) => (i % 2 ? a[i % na]! : floats(1)[0]!));
    const [ws, wv, cs, cv] = await onBoth(() => tf.equal(tf.tensor(a, sa), tf.tensor(b, sb)));
    assert.deepEqual(ws, cs, `${sa} vs ${sb}`);
    assert.deepEqual(wv, cv, `${sa} vs ${sb}`);
    assert.ok(wv.some((x) => x === 1) || na * nb < 4, `${sa} vs ${sb}: some equal pairs`);
  }
});
