import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode } from '../src/checkpoint/dtype.js';
import { SafetensorsWriter } from '../src/checkpoint/safetensors.js';
import { Rng } from '../src/ml/random.js';
import { median, round, timeSync } from './util.js';

const WORKER = fileURLToPath(new URL('./merge-worker.js', import.meta.url));

/*
 * Merging k = 5 checkpoints of 100 MB each (500 MB in all), in F32 and in F16, against two
 * baselines measured in the same run on the same bytes: reading every input file once, and a
 * plain memory copy. The files are fresh, so all of it comes from the page cache. Each merge runs
 * in its own process, whose peak RSS is compared with the size of one model and of the largest
 * tensor.
 */

const K = 5;
const MODEL_BYTES = 100 * (1 << 20);
const TENSORS = 10;

function makeModels(dir: string, dtype: 'F32' | 'F16'): string[] {
  const width = dtype === 'F32' ? 4 : 2;
  const elements = MODEL_BYTES / width / TENSORS;
  const rng = new Rng(`bench-merge:${dtype}`);
  const values = new Float32Array(elements);
  const paths: string[] = [];
  for (let m = 0; m < K; m++) {
    const path = join(dir, `${dtype}-${m}.safetensors`);
    const entries = Array.from({ length: TENSORS }, (_, t) => ({ name: `layer.${t}.weight`, dtype, shape: [elements / 1024, 1024] }));
    const w = new SafetensorsWriter(path, entries);
    for (const e of entries) {
      for (let i = 0; i < elements; i++) values[i] = rng.normal() * 0.02;
      w.write(e.name, dtype === 'F32' ? new Uint8Array(values.buffer) : encode(values, 'F16'));
    }
    w.close();
    paths.push(path);
  }
  return paths;
}

function readAll(paths: string[]): void {
  const buf = Buffer.allocUnsafe(1 << 22);
  for (const p of paths) {
    const fd = openSync(p, 'r');
    while (readSync(fd, buf, 0, buf.length, null) > 0);
    closeSync(fd);
  }
}

/**
 * A copy of `bytes` from one region of memory to another as large, both touched first (no page
 * faults timed): what moving the bytes costs, without reading files or computing anything.
 */
function memcpyRegions(bytes: number): { src: Buffer; dst: Buffer } {
  return { src: Buffer.alloc(bytes, 1), dst: Buffer.alloc(bytes, 0) };
}

export function benchMerge(): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-bench-merge-'));
  const results = [];
  try {
    for (const dtype of ['F32', 'F16'] as const) {
      const models = makeModels(dir, dtype);
      const bytes = models.reduce((a, p) => a + statSync(p).size, 0);
      readAll(models); // warm the page cache like the merge will find it
      const runs = [0, 1, 2].map((i) => {
        const out = join(dir, `out-${dtype}-${i}`);
        const r = spawnSync(process.execPath, [WORKER, JSON.stringify({ models, method: 'linear', params: { normalize: true }, out })], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`merge worker failed: ${r.stderr}`);
        rmSync(out, { recursive: true, force: true });
        return JSON.parse(r.stdout) as { ms: number; max_rss_bytes: number; largest_tensor_elements: number };
      });
      const mergeMs = runs.map((r) => r.ms).sort((a, b) => a - b)[1]!;
      const readMs = median(3, () => timeSync(() => readAll(models)));
      const regions = memcpyRegions(bytes);
      const copyMs = median(3, () => timeSync(() => regions.src.copy(regions.dst)));
      const gbps = (ms: number): number => round(bytes / 1e9 / (ms / 1000));
      const largest = runs[0]!.largest_tensor_elements * (dtype === 'F32' ? 4 : 2);
      const rss = Math.max(...runs.map((r) => r.max_rss_bytes));
      const bound = 100 * (1 << 20) + (K + 1) * largest;
      const row = {
        dtype, models: K, input_bytes: bytes, model_bytes: MODEL_BYTES, largest_tensor_bytes: largest,
        merge_ms: round(mergeMs), read_inputs_once_ms: round(readMs), memcpy_ms: round(copyMs),
        merge_gbps: gbps(mergeMs), read_gbps: gbps(readMs), memcpy_gbps: gbps(copyMs),
        ratio_merge_vs_memcpy: round(copyMs / mergeMs), ratio_merge_vs_read: round(readMs / mergeMs),
        peak_rss_bytes: rss, rss_bound_bytes: bound, rss_within_bound: rss <= bound,
      };
      results.push(row);
      process.stderr.write(`merge ${dtype}: ${JSON.stringify(row)}\n`);
      for (const p of models) rmSync(p);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { runs: results, targets: { merge_at_least_half_of_memcpy: results.every((r) => r.ratio_merge_vs_memcpy >= 0.5), rss_within_bound: results.every((r) => r.rss_within_bound) } };
}
