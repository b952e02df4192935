/**
 * Canonical JSON: object keys sorted, no whitespace. Two values that mean the same produce the
 * same bytes, so reordering keys in a pipeline file never changes a key. (Built by appending to
 * one string: keys hash every node's fingerprint, and the arrays of map/filter/join were a third
 * of planning a 20,000-node pipeline.) An array of plain values, and an object of plain values
 * whose keys are in order already, are the bytes JSON.stringify gives, and are written by it: the
 * fingerprint of a node that reads 10,000 others, and its record's list of what it read, took
 * three times as long written value by value.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`cannot hash non-finite number ${value}`);
    if (typeof value === 'bigint') return value.toString();
    return value === undefined ? 'null' : JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    if (value.every(plain)) return JSON.stringify(value);
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + canonicalJson(value[i]);
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (inOrder(keys)) {
    // A plain object (not a Date, whose toJSON JSON.stringify would call) of plain values.
    if (Object.getPrototypeOf(obj) === Object.prototype && keys.every((k) => plain(obj[k]))) return JSON.stringify(obj);
  } else keys.sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(v)}`;
    first = false;
  }
  return `${out}}`;
}

/** A value JSON.stringify writes as canonicalJson does: a string, a finite number, a boolean, null, or undefined (null in an array, left out of an object). */
function plain(v: unknown): boolean {
  const t = typeof v;
  return t === 'string' || t === 'boolean' || v === null || v === undefined || (t === 'number' && Number.isFinite(v));
}

/** Sorted as Array.prototype.sort sorts strings (by UTF-16 code units). */
function inOrder(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false;
  return true;
}
