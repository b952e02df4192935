import { UserError } from '../diagnostics.js';
import { comparePairs, formatTable, taskRows } from '../report/metrics-table.js';
import { open, type GlobalOptions } from './common.js';

export async function metricsCommand(pipeline: string | undefined, opts: { json?: boolean }, g: GlobalOptions): Promise<number> {
  const project = await open(pipeline, g);
  if (!project.report) throw new UserError(`${project.displayPath} has no "report" section: say which evaluate stages to compare, e.g. report: { baseline: test_baseline, method: test_dfwe }`);
  const pairs = comparePairs(project);
  const rows = taskRows(pairs);
  if (opts.json) {
    process.stdout.write(JSON.stringify({ pipeline: project.displayPath, tasks: rows, pairs }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(formatTable(rows) + '\n');
  const missing = pairs.filter((p) => p.delta === undefined).length;
  if (missing) process.stdout.write(`(${missing} of ${pairs.length} comparisons not run yet: dfwe run)\n`);
  return 0;
}
