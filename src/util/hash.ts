import { hash } from 'node:crypto';
import { closeSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { canonicalJson } from './canonical.js';
import { openRegular } from './fs-safe.js';
import type { Digest } from './key-types.js';

/*
 * Two hashes, each chosen for its job (measured on this 2-core machine, 1 GiB file, see
 * bench/hash.ts):
 * - File contents can be gigabytes of model weights, so throughput matters: two xxh3-64 streams
 *   with different seeds give a 128-bit digest at ~4.2 GB/s, against 1.4 GB/s for sha256 and
 *   1.5 GB/s for one-shot xxh128 per chunk (the binding copies). Inputs are not adversarial.
 * - Keys hash a few hundred bytes of canonical JSON, where speed is irrelevant (<1 µs either way):
 *   sha256, so a shared cache never has to argue about collisions of its index.
 */

/**
 * The native xxhash binding, loaded when a file is first hashed: a no-op `status` hashes nothing,
 * and loading it (a CommonJS package and a shared library) is a few ms of its start.
 */
let binding: typeof import('@node-rs/xxhash') | undefined;
const xxh3 = (): typeof import('@node-rs/xxhash')['xxh3'] => (binding ??= createRequire(import.meta.url)('@node-rs/xxhash') as typeof import('@node-rs/xxhash')).xxh3;

const SEED_A = 0n;
const SEED_B = 0x9e3779b97f4a7c15n;
const CHUNK = 1 << 20; // 1 MiB: the measured sweet spot between syscall count and cache misses
let chunkBuffer: Buffer | undefined;

function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

/** A content digest taken piece by piece, as the bytes come (a file read in chunks, a download). */
export class Digester {
  private readonly a = xxh3().Xxh3.withSeed(SEED_A);
  private readonly b = xxh3().Xxh3.withSeed(SEED_B);

  update(bytes: Uint8Array | string): this {
    this.a.update(bytes);
    this.b.update(bytes);
    return this;
  }

  digest(): Digest {
    return (hex64(this.a.digest()) + hex64(this.b.digest())) as Digest;
  }
}

/**
 * The same digest as a Digester's. Up to a chunk, one call per seed: two streaming states cost
 * 12.5 us for a 20-byte input against 1 us (a pipeline of small stages hashes thousands of small
 * outputs and logs); beyond it, streamed, as the one-shot call copies its input.
 */
export function digestBytes(data: Uint8Array | string): Digest {
  if (data.length > CHUNK) return new Digester().update(data).digest();
  const { xxh64 } = xxh3();
  return (hex64(xxh64(data, SEED_A)) + hex64(xxh64(data, SEED_B))) as Digest;
}

/** Digest of the bytes behind an open descriptor, read from its start. */
export function digestFd(fd: number): Digest {
  const buf = (chunkBuffer ??= Buffer.allocUnsafe(CHUNK));
  let filled = 0;
  for (let n; filled < CHUNK && (n = readSync(fd, buf, filled, CHUNK - filled, filled)) > 0; ) filled += n;
  if (filled < CHUNK) return digestBytes(buf.subarray(0, filled));
  const d = new Digester().update(buf);
  for (let n, pos = CHUNK; (n = readSync(fd, buf, 0, CHUNK, pos)) > 0; pos += n) d.update(buf.subarray(0, n));
  return d.digest();
}

/**
 * Digest of a regular file's content. `follow: false` refuses a symlink; a FIFO or a device is
 * an FsShapeError, never a read that blocks or never ends.
 */
export function digestFile(path: string, opts: { follow: boolean; what?: string } = { follow: true }): Digest {
  const { fd } = openRegular(path, opts);
  try {
    return digestFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** A key over structured data: sha256 of its canonical JSON, 128 bits in hex (one-shot: 2.3x a Hash object's speed for a fingerprint). */
export function keyOf(value: unknown): string {
  return hash('sha256', canonicalJson(value)).slice(0, 32);
}
