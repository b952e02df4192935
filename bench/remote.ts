import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { UPLOAD_PARTS } from '../src/cache/s3-remote.js';
import { dfweTimed, round } from './util.js';

/*
 * The shared cache against the plain transfer of the same bytes, in one run, with the same client
 * (the AWS SDK v3 S3 client, the same part size and parallelism) to the same server: a stage
 * writes DFWE_BENCH_REMOTE_MIB (default 1024) MiB of random bytes; `dfwe push` (objects, then the signed record) is timed against one
 * upload of that file, and `dfwe pull` in a second workspace with its own cache (download, digest
 * check, seal, record) against one download of it to a file. Needs an S3-compatible server:
 * AWS_ENDPOINT_URL and credentials in the environment, and a bucket (DFWE_BENCH_REMOTE_BUCKET, else
 * DFWE_TEST_S3_BUCKET; scripts/local-s3.sh start gives all of them).
 */
export async function benchRemote(mib: number): Promise<unknown> {
  const bucket = process.env.DFWE_BENCH_REMOTE_BUCKET ?? process.env.DFWE_TEST_S3_BUCKET;
  if (!bucket) throw new Error('no S3 server: start one with scripts/local-s3.sh start and eval its exports (or set DFWE_BENCH_REMOTE_BUCKET and the AWS variables)');
  const run = `bench-${Date.now().toString(36)}`;
  const url = `s3://${bucket}/${run}`;
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-bench-remote-'));
  process.env.DFWE_REMOTE_KEY = 'bench signing key';
  try {
    const yaml = `version: 1\nstages:\n  weights:\n    cmd: head -c ${mib << 20} /dev/urandom > \${{ outs.f }}\n    outs: { f: out/weights.bin }\n`;
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    for (const ws of [a, b]) {
      mkdirSync(ws);
      writeFileSync(join(ws, 'dfwe.yaml'), yaml);
    }
    dfweTimed(a, ['run', '--no-push']);
    const file = join(a, 'out/weights.bin');
    const bytes = statSync(file).size;
    // The plain transfer: the same client, configured as dfwe configures it, with nothing around it.
    const sdk = await import('@aws-sdk/client-s3');
    const { Upload } = await import('@aws-sdk/lib-storage');
    const endpoint = process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    const client = new sdk.S3Client({ region: process.env.AWS_REGION ?? 'us-east-1', ...(endpoint ? { endpoint, forcePathStyle: true } : {}), requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    const key = (i: number): string => `${run}-plain/${i}`;
    const upload = (i: number): Promise<unknown> => new Upload({ client, params: { Bucket: bucket, Key: key(i), Body: createReadStream(file, { highWaterMark: 1 << 20 }) }, partSize: UPLOAD_PARTS.size, queueSize: UPLOAD_PARTS.queue }).done();
    const download = async (i: number, dest: string): Promise<void> => {
      const r = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key(i) }));
      await pipeline(r.Body as Readable, createWriteStream(dest));
    };
    try {
      const rounds: { upload_ms: number; push_ms: number; download_ms: number; pull_ms: number }[] = [];
      for (let i = 0; i < 3; i++) {
        // Each round on a remote of its own: a push finds nothing there, a pull everything.
        process.env.DFWE_REMOTE = `${url}-${i}`;
        let t = performance.now();
        await upload(i);
        const up = performance.now() - t;
        const push = dfweTimed(a, ['push']).ms;
        rmSync(join(b, 'cache'), { recursive: true, force: true });
        t = performance.now();
        await download(i, join(dir, `down-${i}`));
        const down = performance.now() - t;
        rmSync(join(dir, `down-${i}`));
        const pull = dfweTimed(b, ['pull']).ms;
        rounds.push({ upload_ms: round(up), push_ms: round(push), download_ms: round(down), pull_ms: round(pull) });
        process.stderr.write(`remote round ${i}: ${JSON.stringify(rounds[i])}\n`);
      }
      const best = (k: keyof (typeof rounds)[number]): number => Math.min(...rounds.map((r) => r[k]));
      return {
        bytes, server: process.env.AWS_ENDPOINT_URL ?? 'AWS', rounds,
        best: { upload_ms: best('upload_ms'), push_ms: best('push_ms'), download_ms: best('download_ms'), pull_ms: best('pull_ms') },
        ratio_push_vs_upload: round(best('push_ms') / best('upload_ms')),
        ratio_pull_vs_download: round(best('pull_ms') / best('download_ms')),
        push_mb_per_s: round(bytes / 1e6 / (best('push_ms') / 1000)),
        pull_mb_per_s: round(bytes / 1e6 / (best('pull_ms') / 1000)),
        targets: { push_within_1_25x: best('push_ms') / best('upload_ms') <= 1.25, pull_within_1_25x: best('pull_ms') / best('download_ms') <= 1.25 },
      };
    } finally {
      client.destroy();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
