/**
 * Tensor-name patterns: globs where `*` matches any run of characters (dots included, so
 * `encoder.*` is the whole encoder) and `?` one character. A name matches a list when it
 * matches any of its patterns.
 *
 * Matched without regular expressions: `*.*.weight` as a backtracking regex took minutes on one
 * name of 600,000 dots. Here the pieces between stars are found left to right, each at its first
 * place, which is right for globs of `*` and `?` only; the time is at most name × pattern length.
 */
export function globMatcher(patterns: readonly string[]): (name: string) => boolean {
  const compiled = patterns.map((p) => p.split('*'));
  return (name) => compiled.some((pieces) => globMatches(pieces, name));
}

/** Whether `piece` (with `?` for any one character) matches `name` at `at`. */
function pieceAt(piece: string, name: string, at: number): boolean {
  if (at + piece.length > name.length) return false;
  for (let i = 0; i < piece.length; i++) if (piece[i] !== '?' && piece[i] !== name[at + i]) return false;
  return true;
}

function globMatches(pieces: readonly string[], name: string): boolean {
  const first = pieces[0]!;
  if (pieces.length === 1) return first.length === name.length && pieceAt(first, name, 0);
  const last = pieces[pieces.length - 1]!;
  if (first.length + last.length > name.length || !pieceAt(first, name, 0) || !pieceAt(last, name, name.length - last.length)) return false;
  let at = first.length;
  const end = name.length - last.length;
  for (let k = 1; k < pieces.length - 1; k++) {
    const piece = pieces[k]!;
    let found = -1;
    for (let i = at; i + piece.length <= end; i++) {
      if (pieceAt(piece, name, i)) {
        found = i;
        break;
      }
    }
    if (found < 0) return false;
    at = found + piece.length;
  }
  return true;
}
