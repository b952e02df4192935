import { readFileSync } from 'node:fs';
import { planMerge, writeMerge } from '../src/merge/engine.js';
import { mergeMethods } from '../src/merge/methods/index.js';

/*
 * One merge in a process of its own, so its peak RSS is the merge's: argv[2] is a JSON
 * {models, base?, method, params, out}. Prints {ms, max_rss_bytes, largest_tensor_elements}.
 */
const job = JSON.parse(process.argv[2]!) as { models: string[]; base?: string; method: string; params: Record<string, unknown>; out: string; threads?: number };
const method = mergeMethods.get(job.method)!;
const plan = planMerge({ models: job.models, base: job.base, method, params: job.params });
const t0 = performance.now();
const { threads } = await writeMerge(plan, plan.groupNames.map(() => method.defaultWeights(job.models.length)), job.out, { threads: job.threads });
const ms = performance.now() - t0;
// VmHWM, not getrusage's maxrss: the latter survives exec, so it would count the parent's memory.
const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
process.stdout.write(JSON.stringify({ ms, max_rss_bytes: hwm, threads, largest_tensor_elements: plan.largest }) + '\n');
