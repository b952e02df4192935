import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';

/** The longest line kept whole; the rest of a longer one is dropped (said by a trailing note). */
export const MAX_LINE_CHARS = 64 * 1024;

/**
 * Lines of a stream a user's program writes, in bounded memory: readline holds a line whole, so
 * 3 GB without a newline ends in `Invalid string length`. Here a line past `max` characters is
 * cut, and what follows it up to the newline is counted, not kept.
 */
export function boundedLines(input: Readable, onLine: (line: string) => void, max = MAX_LINE_CHARS): void {
  const decoder = new StringDecoder('utf8');
  let parts: string[] = [];
  let kept = 0;
  let dropped = 0;
  const take = (s: string): void => {
    if (kept < max) {
      const piece = s.length > max - kept ? s.slice(0, max - kept) : s;
      parts.push(piece);
      kept += piece.length;
      dropped += s.length - piece.length;
    } else dropped += s.length;
  };
  const flush = (): void => {
    const line = parts.join('').replace(/\r$/, '');
    parts = [];
    kept = 0;
    onLine(dropped > 0 ? `${line}… (${dropped} more characters of this line not kept)` : line);
    dropped = 0;
  };
  const feed = (text: string): void => {
    let from = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
      take(text.slice(from, nl));
      flush();
      from = nl + 1;
    }
    if (from < text.length) take(text.slice(from));
  };
  input.on('data', (chunk: Buffer) => feed(decoder.write(chunk)));
  input.on('end', () => {
    feed(decoder.end());
    if (kept > 0 || dropped > 0) flush();
  });
}
