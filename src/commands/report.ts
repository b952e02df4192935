import { resolve } from 'node:path';
import { statSync } from 'node:fs';
import { listRuns, resolveRun } from '../history/runs.js';
import { buildModel } from '../report/html/report-model.js';
import { renderPage } from '../report/html/page.js';
import { writeFileAtomic } from '../util/fsx.js';
import { open, type GlobalOptions } from './common.js';

/** `dfwe report`: the pipeline's results, graph, last run and history as one self-contained HTML file. */
export async function reportCommand(pipeline: string | undefined, opts: { output?: string; run?: string[] }, g: GlobalOptions): Promise<number> {
  const t0 = performance.now();
  const project = await open(pipeline, g);
  const { runs } = listRuns(project.store);
  const compared = (opts.run ?? []).map((ref) => resolveRun(runs, ref, project.workspace));
  const html = renderPage(buildModel(project, runs, compared));
  const out = opts.output !== undefined ? resolve(opts.output) : resolve(project.workspace, 'report.html');
  writeFileAtomic(out, html, { durable: false });
  project.saveState();
  const kib = (statSync(out).size / 1024).toFixed(0);
  process.stdout.write(`${out}\n`);
  process.stderr.write(`dfwe: report of ${project.displayPath} (${project.graph.order.length} nodes) written: ${kib} KiB in ${((performance.now() - t0) / 1000).toFixed(2)}s; open it in a browser (it needs no network)\n`);
  return 0;
}
