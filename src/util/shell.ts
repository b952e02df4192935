/** A string as one POSIX shell word: as it is when nothing in it is special, else single-quoted. */
export function shellQuote(s: string): string {
  return /^[\w./=+,@%:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
