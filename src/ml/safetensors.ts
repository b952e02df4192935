import { readFileSync, writeFileSync } from 'node:fs';
import { StageInputError } from '../stage-type.js';
import { dict } from '../util/dict.js';

/*
 * safetensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the
 * raw little-endian tensor bytes. PyTorch users read it with `safetensors.torch.load_file`.
 * Tensors are written in name order and the header padded with spaces to 8 bytes, so the same
 * weights always give the same bytes.
 */

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export function writeSafetensors(path: string, tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}): void {
  const names = [...tensors.keys()].sort();
  const header = dict<unknown>([['__metadata__', metadata]]);
  let offset = 0;
  for (const n of names) {
    const t = tensors.get(n)!;
    const bytes = t.data.length * 4;
    header[n] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let p = 8 + headerBytes.length;
  for (const n of names) {
    const t = tensors.get(n)!;
    // Explicit little-endian, whatever the machine.
    for (let i = 0; i < t.data.length; i++, p += 4) out.writeFloatLE(t.data[i]!, p);
  }
  writeFileSync(path, out);
}

export function readSafetensors(path: string): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  const buf = readFileSync(path);
  if (buf.length < 8) throw new StageInputError(`${path}: not a safetensors file (too short)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) throw new StageInputError(`${path}: not a safetensors file (header length ${n})`);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const tensors = new Map<string, NamedTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = h as unknown as Record<string, string>;
      continue;
    }
    if (h.dtype !== 'F32') throw new StageInputError(`${path}: tensor ${name} is ${h.dtype}; dfwe reads F32`);
    const [b, e] = h.data_offsets;
    const data = new Float32Array((e - b) / 4);
    for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(base + b + 4 * i);
    tensors.set(name, { shape: h.shape, data });
  }
  return { tensors, metadata };
}
