import { benchDfwe } from './dfwe.js';
import { benchEngine } from './engine.js';
import { benchHash } from './hash.js';
import { benchInodeReuse } from './inode-reuse.js';
import { benchMerge } from './merge.js';
import { benchMl } from './ml.js';
import { benchReliability } from './reliability.js';
import { benchRemote } from './remote.js';
import { benchReport } from './report.js';
import { benchSlurm } from './slurm.js';
import { benchSweep } from './sweep.js';
import { benchTorch } from './torch.js';
import { spawnSync } from 'node:child_process';
import { ownTmpdir, writeResult } from './util.js';

/** `npm run bench [-- NAME…]`: every benchmark, or the named ones. JSON in bench/results/. */
const all: Record<string, () => Promise<unknown> | unknown> = {
  hash: () => benchHash(Number(process.env.DFWE_BENCH_HASH_MIB ?? 512)),
  engine: () => benchEngine((process.env.DFWE_BENCH_SIZES ?? '2002,20002,100002').split(',').map(Number)),
  sweep: () => benchSweep(),
  ml: () => benchMl(),
  merge: () => benchMerge(),
  dfwe: () => benchDfwe((process.env.DFWE_BENCH_SEEDS ?? '0,1,2').split(',').map(Number)),
  reliability: () => benchReliability(Number(process.env.DFWE_BENCH_KILLS ?? 60), Number(process.env.DFWE_BENCH_FUZZ ?? 3000), Number(process.env.DFWE_BENCH_ADVERSARIAL ?? 20)),
  torch: () => benchTorch((process.env.DFWE_BENCH_SEEDS ?? '0,1,2,3,4').split(',').map(Number), process.env.DFWE_TORCH_PYTHON ?? '/usr/bin/python3'),
  report: () => benchReport(Number(process.env.DFWE_BENCH_REPORT_MEMBERS ?? 2500)),
  remote: () => benchRemote(Number(process.env.DFWE_BENCH_REMOTE_MIB ?? 1024)),
  inodes: () => benchInodeReuse(Number(process.env.DFWE_BENCH_INODES_REMOVED ?? 20_000)),
  slurm: () => benchSlurm(Number(process.env.DFWE_BENCH_SLURM_CHAIN ?? 20), Number(process.env.DFWE_BENCH_SLURM_FAN ?? 100), 32),
};
// Without a reachable cluster the Slurm benchmark runs only when named (and then says why it cannot);
// the inode one only when named, since it leaves the filesystem slow for minutes after it.
const defaults = Object.keys(all).filter((n) => n !== 'inodes' && (n !== 'slurm' || spawnSync('sinfo', ['-h']).status === 0) && (n !== 'remote' || (process.env.DFWE_BENCH_REMOTE_BUCKET ?? process.env.DFWE_TEST_S3_BUCKET) !== undefined) && (n !== 'torch' || spawnSync(process.env.DFWE_TORCH_PYTHON ?? '/usr/bin/python3', ['-c', 'import torch']).status === 0));

ownTmpdir('dfwe-bench-');

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !(w in all));
if (unknown.length) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; have: ${Object.keys(all).join(', ')}\n`);
  process.exit(2);
}
const summary: Record<string, unknown> = {};
for (const name of wanted.length ? wanted : defaults) {
  const t = performance.now();
  const result = await all[name]!();
  const path = writeResult(name, { date: new Date().toISOString(), seconds: Number(((performance.now() - t) / 1000).toFixed(1)), ...(result as object) });
  summary[name] = result;
  process.stderr.write(`${name}: wrote ${path}\n`);
}
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
