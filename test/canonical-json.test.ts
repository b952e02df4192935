import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson } from '../src/util/canonical.js';

/*
 * Canonical JSON is what every key and record checksum hashes: its bytes must never change for a
 * value, whichever way it is written. canonical.ts hands arrays of plain values and objects whose
 * keys are already in order to JSON.stringify; this holds it to the definition, written value by
 * value here, over values of every shape.
 */

/** The definition: keys sorted at every level, no whitespace, a leaf as JSON.stringify writes it. */
function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('non-finite');
    return value === undefined ? 'null' : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${Array.from(value, (v) => reference(v)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const parts = Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${reference(obj[k])}`);
  return `{${parts.join(',')}}`;
}

/** A small seeded generator (mulberry32): the same values on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function value(rnd: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const key = (): string => pick(['a', 'b', 'B', 'z', '10', '9', '1', 'é', 'x y', '"q"', 'finetune[i=1]', 'finetune[i=10]', '__proto__x', '\u2028', 'upstream']);
  const leaf = (): unknown => pick(['s', '', 'line\nbreak', '\u2028', '\ud800', 0, -0, 1.5, 1e21, -3, true, false, null, undefined]);
  if (depth <= 0 || rnd() < 0.3) return leaf();
  const n = Math.floor(rnd() * 6);
  const r = rnd();
  if (r < 0.35) return Array.from({ length: n }, () => (rnd() < 0.6 ? leaf() : value(rnd, depth - 1)));
  const keys = Array.from({ length: n }, key);
  // Keys in order, in reverse order, or as they come: each of canonical.ts's paths.
  if (r < 0.55) keys.sort();
  else if (r < 0.7) keys.sort().reverse();
  const obj: Record<string, unknown> = r < 0.8 ? {} : Object.create(null);
  for (const k of keys) obj[k] = rnd() < 0.6 ? leaf() : value(rnd, depth - 1);
  return obj;
}

test('canonical JSON gives the bytes of its definition for values of every shape (keys in order or not, plain values or not)', () => {
  const rnd = random(26);
  for (let i = 0; i < 5000; i++) {
    const v = value(rnd, 4);
    assert.equal(canonicalJson(v), reference(v), JSON.stringify(v));
  }
});

test('canonical JSON of a large map and list is written whole and still canonical', () => {
  // As a node that reads 10,000 others has them: its upstream map in graph order, and in key order.
  const ids = Array.from({ length: 10_000 }, (_, i) => `finetune[i=${i}]`);
  const inGraphOrder = Object.fromEntries(ids.map((id, i) => [id, i.toString(16).padStart(32, '0')]));
  const inKeyOrder = Object.fromEntries([...ids].sort().map((id) => [id, inGraphOrder[id]]));
  assert.equal(canonicalJson(inGraphOrder), reference(inGraphOrder));
  assert.equal(canonicalJson(inKeyOrder), canonicalJson(inGraphOrder));
  const list = Object.values(inGraphOrder);
  assert.equal(canonicalJson(list), reference(list));
  // A value JSON.stringify writes otherwise is never handed to it.
  assert.throws(() => canonicalJson([1, Number.NaN]), /non-finite/);
  assert.throws(() => canonicalJson({ a: 1, b: Infinity }), /non-finite/);
  assert.equal(canonicalJson({ a: new Date(0) }), '{"a":{}}');
});
