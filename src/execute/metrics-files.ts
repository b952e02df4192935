import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeDef } from '../pipeline/types.js';
import { nestedWithin } from '../util/depth.js';
import { dict } from '../util/dict.js';
import type { Bounds } from '../workspace-bounds.js';

/*
 * A command stage's metrics files: JSON objects of numbers, nested per task if it likes
 * (`{"t0": {"score": 81.5}}` is the metric t0.score). Read after the stage succeeded and before
 * its outputs are committed, so a node whose metrics cannot be read fails and caches nothing.
 */

/** Larger than any table of numbers a stage means to report; a bigger file is a mistake. */
const MAX_BYTES = 16 * 1024 * 1024;
const MAX_DEPTH = 64;

export class MetricsFileError extends Error {}

/** The numbers of the node's metrics files, by dotted name; undefined when it declares none. */
export function readMetricsFiles(workspace: string, bounds: Bounds, node: NodeDef): Record<string, number> | undefined {
  if (node.metricsFiles.length === 0) return undefined;
  const metrics = dict<number>();
  const from = dict<string>();
  for (const name of node.metricsFiles) {
    const rel = node.outs[name]!;
    const what = `metrics file "${name}" (${rel})`;
    const abs = join(workspace, rel);
    // Read only where it really is in the workspace, and never through a symlink.
    const outside = bounds.outsideWhenWritten(abs);
    if (outside) throw new MetricsFileError(`${what} is really ${outside}, outside the workspace (a symlink on its way); it was not read`);
    const st = lstatSync(abs);
    if (!st.isFile()) throw new MetricsFileError(`${what} is ${st.isSymbolicLink() ? 'a symlink' : 'not a regular file'}: a metrics file is a JSON file the stage writes`);
    if (st.size > MAX_BYTES) throw new MetricsFileError(`${what} is ${st.size.toLocaleString('en-US')} bytes; a metrics file holds numbers, at most ${MAX_BYTES.toLocaleString('en-US')} bytes`);
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(abs, 'utf8'));
    } catch (err) {
      throw new MetricsFileError(`${what} is not JSON: ${(err as Error).message.replace(/\s+/g, ' ').slice(0, 200)}`);
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new MetricsFileError(`${what} must hold a JSON object of numbers, e.g. {"score": 71.2}, not ${Array.isArray(data) ? 'an array' : JSON.stringify(data)?.slice(0, 40)}`);
    if (!nestedWithin(data, MAX_DEPTH)) throw new MetricsFileError(`${what} nests deeper than ${MAX_DEPTH} levels`);
    let found = 0;
    // Iterative: the depth is bounded, but a wide file should not cost a call per value.
    const stack: [prefix: string, value: unknown][] = [['', data]];
    while (stack.length) {
      const [prefix, value] = stack.pop()!;
      if (typeof value === 'number') {
        if (Object.hasOwn(from, prefix)) throw new MetricsFileError(`metric "${prefix}" is in ${from[prefix]} and in ${what}: each metric has one file`);
        metrics[prefix] = value;
        from[prefix] = what;
        found++;
      } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) stack.push([prefix ? `${prefix}.${k}` : k, v]);
      }
      // Strings, booleans, nulls and lists are notes beside the numbers: not metrics.
    }
    if (found === 0) throw new MetricsFileError(`${what} holds no numbers: write the metrics as a JSON object, e.g. {"score": 71.2}`);
  }
  // In name order, as the built-in stages' metrics read.
  return dict(Object.keys(metrics).sort().map((k) => [k, metrics[k]!]));
}
