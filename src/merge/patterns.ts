/**
 * Tensor-name patterns: globs where `*` matches any run of characters (dots included, so
 * `encoder.*` is the whole encoder) and `?` one character. A name matches a list when it
 * matches any of its patterns.
 */
export function globMatcher(patterns: readonly string[]): (name: string) => boolean {
  const res = patterns.map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`));
  return (name) => res.some((r) => r.test(name));
}
