import { endianness } from 'node:os';

/*
 * A file of columns, for the memos every command reads whole: the no-op snapshot (5 MB at 20,002
 * nodes; as one JSON document, decoding it and parsing 250,000 numbers and 100,000 strings was
 * ≈ 100 ms of a 520 ms no-op) and the file-digest memo. The small fields are a JSON head, and each
 * column is a section of its own: numbers as raw 32- or 64-bit arrays, read in place (no parse at
 * all), strings as a JSON array decoded as Latin-1 when the writer found it ASCII.
 *
 *   MAGIC (8 bytes) | u32 head length | u32 0 | head JSON | padding to 8 | sections, each at a multiple of 8
 *
 * The head's `sections` gives each column's offset (from the first section), length in bytes and
 * encoding. Native byte order: the head says which, and a reader of the other order ignores the file.
 */

const PREFIX = 16;

type Encoding = 'u32' | 'f64' | 'ascii' | 'utf8' | 'bytes';

/** What a kind of file is: its 8-byte magic, and which fields are columns and how each is stored. */
export interface SectionFormat {
  magic: string;
  /** `bytes`: a Buffer kept as it is, given back as a view of the file's (for a reader that decodes only parts of it). */
  columns: Record<string, 'u32' | 'f64' | 'json' | 'bytes'>;
}

const align8 = (n: number): number => (n + 7) & ~7;

/** The file for an object of this format: its columns as sections, the rest in the head. */
export function encodeSections(format: SectionFormat, snapshot: object): Buffer {
  const { magic, columns: COLUMNS } = format;
  const head: Record<string, unknown> = { byteOrder: endianness() };
  const sections: Record<string, [number, number, Encoding]> = {};
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, value] of Object.entries(snapshot)) {
    const kind = COLUMNS[name];
    if (kind === undefined || value === undefined) {
      head[name] = value;
      continue;
    }
    let bytes: Uint8Array;
    let encoding: Encoding;
    if (kind === 'bytes') {
      bytes = value as Uint8Array;
      encoding = kind;
    } else if (kind === 'json') {
      const text = JSON.stringify(value);
      bytes = Buffer.from(text, 'utf8');
      // As many bytes as characters: every one is ASCII, and Latin-1 decodes it at memory speed.
      encoding = bytes.length === text.length ? 'ascii' : 'utf8';
    } else {
      const array = kind === 'u32' ? Uint32Array.from(value as ArrayLike<number>) : Float64Array.from(value as ArrayLike<number>);
      bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      encoding = kind;
    }
    sections[name] = [offset, bytes.length, encoding];
    parts.push(bytes);
    const padded = align8(bytes.length);
    if (padded > bytes.length) parts.push(new Uint8Array(padded - bytes.length));
    offset += padded;
  }
  head.sections = sections;
  const headBytes = Buffer.from(JSON.stringify(head), 'utf8');
  const prefix = Buffer.alloc(PREFIX);
  prefix.write(magic, 0, 'latin1');
  prefix.writeUInt32LE(headBytes.length, 8);
  return Buffer.concat([prefix, headBytes, new Uint8Array(align8(PREFIX + headBytes.length) - PREFIX - headBytes.length), ...parts]);
}

/**
 * The object in a file's bytes (number columns as Uint32Array and Float64Array), or undefined
 * when they are not a whole file of this format. Its fields' own shapes are the caller's to check.
 */
export function decodeSections(format: SectionFormat, buf: Buffer): Record<string, unknown> | undefined {
  const { magic, columns: COLUMNS } = format;
  if (buf.length < PREFIX || buf.toString('latin1', 0, magic.length) !== magic) return undefined;
  const headEnd = PREFIX + buf.readUInt32LE(8);
  if (headEnd > buf.length) return undefined;
  let head: Record<string, unknown>;
  try {
    head = JSON.parse(buf.toString('utf8', PREFIX, headEnd)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const sections = head.sections as Record<string, unknown> | undefined;
  if (typeof head !== 'object' || head === null || head.byteOrder !== endianness() || typeof sections !== 'object' || sections === null) return undefined;
  delete head.sections;
  delete head.byteOrder;
  const base = align8(headEnd);
  for (const [name, section] of Object.entries(sections)) {
    if (!Array.isArray(section) || COLUMNS[name] === undefined) return undefined;
    const [offset, length, encoding] = section as [unknown, unknown, unknown];
    if (typeof offset !== 'number' || typeof length !== 'number' || offset % 8 !== 0 || length < 0 || base + offset + length > buf.length) return undefined;
    // Each column in the encoding its kind is written in: a section of numbers is never taken as bytes.
    const kind = COLUMNS[name];
    if (kind === 'json' ? encoding !== 'ascii' && encoding !== 'utf8' : encoding !== kind) return undefined;
    const start = base + offset;
    if (encoding === 'ascii' || encoding === 'utf8') {
      try {
        head[name] = JSON.parse(buf.toString(encoding === 'ascii' ? 'latin1' : 'utf8', start, start + length));
      } catch {
        return undefined;
      }
    } else if (encoding === 'bytes') {
      head[name] = buf.subarray(start, start + length);
    } else if (encoding === 'u32' || encoding === 'f64') {
      const size = encoding === 'u32' ? 4 : 8;
      if (length % size !== 0) return undefined;
      // In place where aligned (a file read whole is); copied otherwise.
      const at = buf.byteOffset + start;
      const [buffer, from] = at % size === 0 ? [buf.buffer, at] : [new Uint8Array(buf.subarray(start, start + length)).buffer, 0];
      head[name] = encoding === 'u32' ? new Uint32Array(buffer, from, length / 4) : new Float64Array(buffer, from, length / 8);
    } else return undefined;
  }
  return head;
}
