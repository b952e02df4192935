import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode } from '../src/checkpoint/dtype.js';
import { SafetensorsWriter } from '../src/checkpoint/safetensors.js';
import { Rng } from '../src/ml/random.js';
import { round } from './util.js';

const WORKER = fileURLToPath(new URL('./merge-worker.js', import.meta.url));
const TORCH = fileURLToPath(new URL('../../bench/python/torch_merge.py', import.meta.url));

/*
 * A uniform linear merge of k = 5 checkpoints of DFWE_BENCH_MERGE_MIB MiB each (default 1024),
 * in F32, BF16 and F16, against three baselines measured in the same run on the same files:
 * torch (load + weighted sum + save, as mergekit's linear does, on the same cores), a plain
 * memory copy of the input's bytes, and reading the input files once. dfwe runs with every core
 * and with one (the speed-up), each merge in a process of its own (its peak RSS is the merge's).
 * The files are fresh, so all of it comes from the page cache.
 */

const K = 5;
const TENSORS = 16;

function makeModels(dir: string, dtype: 'F32' | 'F16' | 'BF16', modelBytes: number): string[] {
  const width = dtype === 'F32' ? 4 : 2;
  const elements = modelBytes / width / TENSORS;
  const rng = new Rng(`bench-merge:${dtype}`);
  // One block of random weights, shifted per model and tensor: generating 5 GiB of normals would take longer than the merges.
  const block = new Float32Array(1 << 22);
  for (let i = 0; i < block.length; i++) block[i] = rng.normal() * 0.02;
  const values = new Float32Array(Math.min(elements, 1 << 22));
  return Array.from({ length: K }, (_, m) => {
    const path = join(dir, `${dtype}-${m}.safetensors`);
    const entries = Array.from({ length: TENSORS }, (_, t) => ({ name: `layer.${t}.weight`, dtype, shape: [elements / 1024, 1024] }));
    const w = new SafetensorsWriter(path, entries);
    for (const [t, e] of entries.entries()) {
      for (let s = 0; s < elements; s += values.length) {
        const n = Math.min(values.length, elements - s);
        const shift = (m * 7919 + t * 104729 + s) % block.length;
        for (let i = 0; i < n; i++) values[i] = block[(shift + i) % block.length]! * (1 + m / 10);
        const v = values.subarray(0, n);
        w.write(e.name, dtype === 'F32' ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : encode(v, dtype));
      }
    }
    w.close();
    return path;
  });
}

function readAll(paths: string[]): number {
  const buf = Buffer.allocUnsafe(1 << 22);
  const t0 = performance.now();
  for (const p of paths) {
    const fd = openSync(p, 'r');
    while (readSync(fd, buf, 0, buf.length, null) > 0);
    closeSync(fd);
  }
  return performance.now() - t0;
}

interface MergeRun {
  ms: number;
  max_rss_bytes: number;
  threads: number;
}

function dfweMerge(models: string[], out: string, threads: number): MergeRun {
  const r = spawnSync(process.execPath, [WORKER, JSON.stringify({ models, method: 'linear', params: { normalize: true }, out, threads })], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`merge worker failed: ${r.stderr}`);
  rmSync(out, { recursive: true, force: true });
  return JSON.parse(r.stdout) as MergeRun;
}

function torchMerge(python: string, models: string[], out: string, threads: number): number | undefined {
  const r = spawnSync(python, [TORCH, JSON.stringify({ models, weights: models.map(() => 1 / models.length), out, threads })], { encoding: 'utf8' });
  rmSync(out, { force: true });
  if (r.status !== 0) {
    process.stderr.write(`torch baseline failed: ${r.stderr.slice(-400)}\n`);
    return undefined;
  }
  return (JSON.parse(r.stdout) as { ms: number }).ms;
}

const best = (xs: number[]): number => xs.reduce((a, b) => Math.min(a, b));

export function benchMerge(python = process.env.DFWE_TORCH_PYTHON ?? '/usr/bin/python3'): unknown {
  const modelBytes = Number(process.env.DFWE_BENCH_MERGE_MIB ?? 1024) * (1 << 20);
  const cores = availableParallelism();
  const hasTorch = spawnSync(python, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;
  const dir = mkdtempSync(join(tmpdir(), 'dfwe-bench-merge-'));
  const results = [];
  try {
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      const models = makeModels(dir, dtype, modelBytes);
      const bytes = models.reduce((a, p) => a + statSync(p).size, 0);
      readAll(models); // warm the page cache as the merges will find it
      const out = join(dir, 'out');
      const all = [0, 1, 2].map(() => dfweMerge(models, out, cores));
      const one = dfweMerge(models, out, 1);
      const torchMs = hasTorch ? [0, 1].map(() => torchMerge(python, models, join(dir, 'torch.safetensors'), cores)).filter((x): x is number => x !== undefined) : [];
      const readMs = best([0, 1, 2].map(() => readAll(models)));
      // A copy of each model's bytes into a buffer as large, both touched first: moving the input's bytes, nothing else.
      const src = Buffer.alloc(modelBytes, 1);
      const dst = Buffer.alloc(modelBytes, 0);
      const copyMs = best([0, 1, 2].map(() => {
        const t0 = performance.now();
        for (let m = 0; m < K; m++) src.copy(dst);
        return performance.now() - t0;
      }));
      const mergeMs = best(all.map((r) => r.ms));
      const gbps = (ms: number): number => round(bytes / 1e9 / (ms / 1000));
      const rss = Math.max(...all.map((r) => r.max_rss_bytes));
      // Per thread: its kernel buffers and copy buffer, and a V8 isolate; plus the process itself.
      const bound = 96 * 2 ** 20 + cores * 48 * 2 ** 20;
      const row = {
        dtype, models: K, model_bytes: modelBytes, input_bytes: bytes, cores, threads: all[0]!.threads,
        merge_ms: round(mergeMs), merge_one_thread_ms: round(one.ms), speedup_threads: round(one.ms / mergeMs),
        torch_ms: torchMs.length ? round(best(torchMs)) : null, memcpy_ms: round(copyMs), read_inputs_once_ms: round(readMs),
        merge_gbps: gbps(mergeMs), torch_gbps: torchMs.length ? gbps(best(torchMs)) : null, memcpy_gbps: gbps(copyMs),
        ratio_merge_vs_torch: torchMs.length ? round(best(torchMs) / mergeMs) : null,
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
  return {
    runs: results,
    targets: {
      at_least_torch: results.every((r) => r.ratio_merge_vs_torch === null || r.ratio_merge_vs_torch >= 1),
      at_least_half_of_memcpy: results.every((r) => r.ratio_merge_vs_memcpy >= 0.5),
      rss_within_bound: results.every((r) => r.rss_within_bound),
    },
  };
}
