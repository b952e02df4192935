import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestFile } from '../src/util/hash.js';
import { median, round, timeSync } from './util.js';

/** Content digest throughput (what dfwe uses) against sha256 and a plain read of the same file. */
export function benchHash(mib: number): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-hash-'));
  const file = join(dir, 'blob');
  const chunk = randomBytes(1 << 20);
  const fd0 = openSync(file, 'w');
  closeSync(fd0);
  for (let i = 0; i < mib; i++) writeFileSync(file, chunk, { flag: 'a' });
  const buf = Buffer.allocUnsafe(1 << 20);
  const readAll = (update?: (b: Buffer) => void): void => {
    const fd = openSync(file, 'r');
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) update?.(buf.subarray(0, n));
    closeSync(fd);
  };
  const gbps = (ms: number): number => round((mib * (1 << 20)) / 1e9 / (ms / 1000));
  const dfwe = median(3, () => timeSync(() => digestFile(file)));
  const sha = median(3, () => timeSync(() => {
    const h = createHash('sha256');
    readAll((b) => h.update(b));
    h.digest();
  }));
  const read = median(3, () => timeSync(() => readAll()));
  rmSync(dir, { recursive: true, force: true });
  return {
    bytes: mib * (1 << 20),
    dfwe_digest_gbps: gbps(dfwe),
    sha256_gbps: gbps(sha),
    read_only_gbps: gbps(read),
    ratio_dfwe_vs_sha256: round(sha / dfwe),
    ratio_dfwe_vs_read: round(read / dfwe),
  };
}
