/**
 * A record keyed by names a user or a file chose (sweep variables, params, tensors, outputs):
 * without a prototype, so a name like `constructor`, `toString` or `__proto__` is a key like any
 * other, never an inherited member or the prototype setter. Plain `{}` is for fixed keys only.
 */
export function dict<T>(entries?: Iterable<readonly [string, T]>): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  if (entries) for (const [k, v] of entries) out[k] = v;
  return out;
}
