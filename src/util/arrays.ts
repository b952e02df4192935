/*
 * Arrays of any length: a spread into a call (`push(...xs)`, `Math.max(...xs)`) passes every
 * element as an argument and overflows the stack past ~130,000 of them (a directory output of
 * that many files, a sweep of that many nodes). These loop instead.
 */

/** The largest of `values`, or `empty` when there are none. */
export function maxOf(values: Iterable<number>, empty = -Infinity): number {
  let m = -Infinity;
  let any = false;
  for (const v of values) {
    any = true;
    if (v > m || Number.isNaN(v)) m = v;
  }
  return any ? m : empty;
}

/** Append every element of `source` to `target`; returns `target`. */
export function pushAll<T>(target: T[], source: Iterable<T>): T[] {
  for (const x of source) target.push(x);
  return target;
}
