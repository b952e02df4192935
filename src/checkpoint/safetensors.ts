import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { StageInputError } from '../stage-type.js';
import { DTYPE_BYTES } from './dtype.js';
import { dict } from '../util/dict.js';

/*
 * safetensors, read and written a tensor at a time: an 8-byte little-endian header length N, a
 * JSON header of N bytes {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
 * {string: string}}, then the tensor bytes, little-endian, row-major, offsets relative to the
 * end of the header. Every number in a header is checked before it is used (a header that lies
 * is an error that names the file and what is wrong, never a read out of bounds).
 */

/** Headers larger than this are refused (the reference implementation's limit too). */
const MAX_HEADER = 100 << 20;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset in the file, and length. */
  offset: number;
  bytes: number;
}

export interface SafetensorsHeader {
  path: string;
  /** In data order. */
  tensors: TensorInfo[];
  metadata: Record<string, string>;
}

/** Read and check a file's header. */
export function readHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const bad = (why: string): never => {
      throw new StageInputError(`${path}: not a valid safetensors file: ${why}`);
    };
    if (size < 8) bad(`it is ${size} bytes long, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER)) bad(`its header would be ${n} bytes (the limit is ${MAX_HEADER})`);
    if (Number(n) > size - 8) bad(`its header would be ${n} bytes, but the file is ${size} bytes (truncated?)`);
    const headerBuf = Buffer.alloc(Number(n));
    readSync(fd, headerBuf, 0, headerBuf.length, 8);
    let parsed: unknown;
    try {
      parsed = JSON.parse(headerBuf.toString('utf8'));
    } catch (err) {
      bad(`its header is not JSON (${(err as Error).message})`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) bad('its header is not a JSON object');
    const start = 8 + Number(n);
    const tensors: TensorInfo[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, h] of Object.entries(parsed as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (!h || typeof h !== 'object' || Object.values(h).some((v) => typeof v !== 'string')) bad('"__metadata__" must map strings to strings');
        metadata = h as Record<string, string>;
        continue;
      }
      const t = h as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!t || typeof t !== 'object') bad(`tensor "${name}" is not an object`);
      if (typeof t.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, t.dtype)) bad(`tensor "${name}" has dtype ${JSON.stringify(t.dtype)}, which dfwe does not know`);
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`tensor "${name}" has shape ${JSON.stringify(t.shape)}`);
      const o = t.data_offsets;
      if (!Array.isArray(o) || o.length !== 2 || !o.every((x) => Number.isSafeInteger(x) && x >= 0) || o[0] > o[1]) bad(`tensor "${name}" has data_offsets ${JSON.stringify(o)}`);
      const [b, e] = o as [number, number];
      const dtype = t.dtype as string;
      const shape = t.shape as number[];
      const elements = shape.reduce((a, d) => a * d, 1);
      if (e - b !== elements * DTYPE_BYTES[dtype]!) bad(`tensor "${name}" (${dtype} ${JSON.stringify(shape)}) needs ${elements * DTYPE_BYTES[dtype]!} bytes, its offsets give ${e - b}`);
      if (start + e > size) bad(`tensor "${name}" ends at byte ${start + e}, past the end of the file (${size} bytes: truncated?)`);
      tensors.push({ name, dtype, shape, offset: start + b, bytes: e - b });
    }
    tensors.sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < tensors.length; i++) {
      const prev = tensors[i - 1]!;
      if (tensors[i]!.offset < prev.offset + prev.bytes) bad(`tensors "${prev.name}" and "${tensors[i]!.name}" overlap`);
    }
    return { path, tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/**
 * Bytes [from, from + length) of a tensor (all of it by default), into `buf` (reused when large
 * enough; a fresh buffer starts 8-byte aligned, so typed arrays can view it).
 */
export function readTensor(fd: number, t: TensorInfo, buf?: Buffer, from = 0, length = t.bytes - from): Buffer {
  if (from < 0 || from + length > t.bytes) throw new Error(`internal: bytes ${from}+${length} of tensor "${t.name}" (${t.bytes} bytes)`);
  const dst = buf && buf.length >= length ? buf.subarray(0, length) : Buffer.allocUnsafeSlow(Math.max(length, 8)).subarray(0, length);
  for (let got = 0; got < length; ) {
    const n = readSync(fd, dst, got, length - got, t.offset + from + got);
    if (n === 0) throw new StageInputError(`tensor "${t.name}": the file ended early (truncated?)`);
    got += n;
  }
  return dst;
}

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
}

/** A file's bytes before its data (length, JSON header padded to 8-byte alignment), each tensor's absolute offset, and the file's size. */
export interface SafetensorsLayout {
  header: Buffer;
  offsets: number[];
  size: number;
}

/** Where everything goes in a safetensors file of these tensors, in this order: the same tensors and metadata always give the same bytes. */
export function safetensorsLayout(entries: readonly TensorEntry[], metadata: Record<string, string> = {}): SafetensorsLayout {
  const header = dict<unknown>();
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const relative: number[] = [];
  for (const e of entries) {
    const size = e.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[e.dtype]!;
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + size] };
    relative.push(offset);
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jsonBytes = Buffer.from(json, 'utf8');
  const lead = Buffer.alloc(8);
  lead.writeBigUInt64LE(BigInt(jsonBytes.length), 0);
  const start = 8 + jsonBytes.length;
  return { header: Buffer.concat([lead, jsonBytes]), offsets: relative.map((o) => start + o), size: start + offset };
}

/**
 * Writes one safetensors file a tensor at a time, in the order given: the header (with every
 * offset) first, then each tensor's bytes as it comes.
 */
export class SafetensorsWriter {
  private readonly fd: number;
  private next = 0;
  /** Bytes of the current tensor written so far. */
  private partial = 0;
  private pos: number;
  private readonly sizes: number[];

  constructor(
    readonly path: string,
    private readonly entries: readonly TensorEntry[],
    metadata: Record<string, string> = {},
  ) {
    const layout = safetensorsLayout(entries, metadata);
    this.sizes = entries.map((e) => e.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[e.dtype]!);
    this.fd = openSync(path, 'w');
    writeAll(this.fd, layout.header, 0);
    this.pos = layout.header.length;
  }

  /** More bytes of the tensor due (entries in order; a tensor may come in several parts). */
  write(name: string, bytes: Uint8Array): void {
    const e = this.entries[this.next];
    if (!e || e.name !== name) throw new Error(`internal: wrote "${name}" where "${e?.name}" was due`);
    if (this.partial + bytes.byteLength > this.sizes[this.next]!) throw new Error(`internal: "${name}" got more than its ${this.sizes[this.next]} bytes`);
    writeAll(this.fd, bytes, this.pos);
    this.pos += bytes.byteLength;
    this.partial += bytes.byteLength;
    this.complete();
  }

  /** Moves past tensors that have all their bytes (zero-size ones included). */
  private complete(): void {
    while (this.next < this.entries.length && this.partial === this.sizes[this.next]) {
      this.next++;
      this.partial = 0;
    }
  }

  /** Whether every tensor has all its bytes. */
  get done(): boolean {
    this.complete();
    return this.next === this.entries.length;
  }

  close(): void {
    closeSync(this.fd);
    if (!this.done) throw new Error(`internal: ${this.path} closed after ${this.next} of ${this.entries.length} tensors`);
  }
}

export function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off, bytes.byteLength - off, position + off);
}
