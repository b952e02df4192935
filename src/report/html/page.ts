import { DFWE_VERSION } from '../../version.js';
import { changedSince } from '../../history/summary.js';
import { heatmapSvg, searchSvg, timelineSvg, type Bar } from './charts.js';
import { dagSvg, stateLegend } from './dag-svg.js';
import { esc } from './escape.js';
import type { ReportModel } from './report-model.js';
import { countsOf } from '../../history/runs.js';
import { averageRow, signed, type Pair } from '../../comparison.js';
import { maxOf } from '../../util/arrays.js';

/*
 * The report as one HTML file: styles inline, every chart an inline SVG, no script, nothing
 * fetched when it is opened. Sections: summary, metrics, sweep heatmap, runs compared, searches,
 * timeline, graph, history.
 */

const num = (x: number | undefined, digits = 2): string => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));
const deltaClass = (x: number | undefined): string => (x === undefined ? '' : x > 0 ? ' class="pos"' : x < 0 ? ' class="neg"' : '');
const mib = (b: number | undefined): string => (b === undefined ? '—' : `${(b / (1 << 20)).toFixed(0)} MiB`);
const secs = (ms: number): string => (ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`);

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1240px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;margin:0 0 14px}.note{color:#57606a;font-size:12.5px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:#57606a;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #d0d7de;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:left}td.n,th.n{text-align:right}
th{background:#f6f8fa;font-weight:600}tr.avg td{font-weight:600;border-top:2px solid #d0d7de}
.pos{color:#1a7f37}.neg{color:#cf222e}
.panel{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px;overflow:auto}
.searches{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
.search-chart h3{font-size:13.5px;margin:0 0 2px;font-family:ui-monospace,monospace}.search-chart p{margin:0 0 4px;font-size:12.5px;color:#57606a}
svg.dag{max-width:100%;height:auto}svg.dag text{font:11px ui-monospace,monospace;fill:#fff;text-anchor:middle}
svg.dag .dag-edge{fill:none;stroke:#90a4ae;stroke-width:1.2}svg.dag .dag-card{fill:#cfd8dc}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin:0 4px 0 12px;vertical-align:-1px}
code{font-family:ui-monospace,monospace;font-size:12.5px}
`;

function metricsSection(m: ReportModel): string {
  if (!m.rows || !m.project.report) return `<h2>Metrics</h2><p class="note">This pipeline has no <code>report</code> section: say which stages to compare (evaluate stages, or stages with metrics files), e.g. <code>report: { baseline: test_baseline, method: test_dfwe }</code>.</p>`;
  const { baseline, method } = m.project.report;
  const sweep = m.rows.some((r) => r.pairs > 1);
  const head = `<tr><th>task</th><th class="n">baseline (${esc(baseline)})</th><th class="n">${esc(method)}${sweep ? ' (best)' : ''}</th><th class="n">delta${sweep ? ' (best)' : ''}</th>${sweep ? '<th class="n">delta (mean)</th><th class="n">source sets</th>' : ''}</tr>`;
  const body = m.rows.map((r) => `<tr data-task="${esc(r.task)}"><td>${esc(r.task)}</td><td class="n">${num(r.baseline)}</td><td class="n">${num(r.method)}</td><td class="n"${deltaClass(r.delta)}>${signed(r.delta)}</td>${sweep ? `<td class="n"${deltaClass(r.meanDelta)}>${signed(r.meanDelta)}</td><td class="n">${r.pairs}</td>` : ''}</tr>`);
  const a = averageRow(m.rows);
  const avg = a && a.tasks > 1 ? `<tr class="avg"><td>average</td><td class="n">${num(a.baseline)}</td><td class="n">${num(a.method)}</td><td class="n"${deltaClass(a.delta)}>${signed(a.delta)}</td>${sweep ? '<td></td><td></td>' : ''}</tr>` : '';
  const missing = m.pairs!.filter((p) => p.delta === undefined).length;
  return `<h2>Metrics</h2><table id="metrics-table"><thead>${head}</thead><tbody>${body.join('')}${avg}</tbody></table>` +
    (missing ? `<p class="note">${missing} of ${m.pairs!.length} comparisons not run yet (<code>dfwe run</code>).</p>` : '');
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Columns of a sweep: each pair's variables other than the one naming its task. */
function sourceSetOf(p: Pair): string {
  const parts = Object.entries(p.vars).filter(([, v]) => v !== p.task).map(([, v]) => (Array.isArray(v) ? v.join('+') : String(v)));
  return parts.join(' ') || p.method;
}

/** A sweep's deltas as heatmap cells: a row per target, a column per source set. */
export function sweepCells(pairs: Pair[]): { rows: string[]; cols: string[]; cells: [number, number, number][] } {
  const done = pairs.filter((p) => p.delta !== undefined);
  const rows = [...new Set(done.map((p) => p.task))];
  const cols = [...new Set(done.map(sourceSetOf))];
  return { rows, cols, cells: done.map((p) => [cols.indexOf(sourceSetOf(p)), rows.indexOf(p.task), p.delta!]) };
}

export function heatmapSection(m: Pick<ReportModel, 'rows' | 'pairs'>): string {
  if (!m.rows?.some((r) => r.pairs > 1)) return '';
  const { rows, cols, cells } = sweepCells(m.pairs!);
  if (cells.length === 0) return '';
  return `<h2>Sweep: delta by target and source set</h2><div class="panel" id="heatmap">${heatmapSvg(rows, cols, cells)}</div>`;
}

function comparedSection(m: ReportModel): string {
  if (m.compared.length === 0) return '';
  const tasks = [...new Set(m.compared.flatMap((c) => c.rows.map((r) => r.task)))];
  const head = `<tr><th>task</th>${m.compared.map((c) => `<th class="n" title="${esc(c.run.id)}">${esc(c.label)}</th>`).join('')}<th class="n">mean</th><th class="n">sd</th><th class="n">ahead</th></tr>`;
  const line = (name: string, values: (number | undefined)[]): string => {
    const v = values.filter((x): x is number => x !== undefined);
    const mu = v.length ? mean(v) : undefined;
    const sd = v.length > 1 ? Math.sqrt(v.reduce((a, x) => a + (x - mu!) ** 2, 0) / (v.length - 1)) : undefined;
    return `<tr data-task="${esc(name)}"><td>${esc(name)}</td>${values.map((x) => `<td class="n"${deltaClass(x)}>${signed(x)}</td>`).join('')}<td class="n"${deltaClass(mu)}>${signed(mu)}</td><td class="n">${num(sd)}</td><td class="n">${v.filter((x) => x > 0).length}/${v.length}</td></tr>`;
  };
  const body = tasks.map((t) => line(t, m.compared.map((c) => c.rows.find((r) => r.task === t)?.delta)));
  if (tasks.length > 1) body.push(line('average', m.compared.map((c) => c.averageDelta)).replace('<tr ', '<tr class="avg" '));
  return `<h2>Runs compared: delta per run</h2><table id="compared-table"><thead>${head}</thead><tbody>${body.join('')}</tbody></table>` +
    `<p class="note">Each column is one recorded run (its report's best delta per task); sd is the sample standard deviation over the runs.</p>`;
}

function searchSection(m: ReportModel): string {
  if (m.searches.length === 0) return '';
  const charts = m.searches.map((s) => {
    const alpha = s.chosenWeights.map((w, i) => `<code>${esc(s.labels[i] ?? `weight ${i + 1}`)}</code> ${w.toFixed(3)}`).join(', ');
    return `<div class="panel search-chart" data-node="${esc(s.node)}" data-evaluations="${s.evals.length}"><h3>${esc(s.node)}</h3>` +
      `<p>${esc(s.optimizer ?? '')}: ${s.evals.length} evaluations; chosen dev score ${num(s.chosenScore)} (evaluation ${s.chosen + 1}, red)${s.bestSingle !== undefined ? `, best single model ${num(s.bestSingle)}` : ''}</p>` +
      `<p>α = ${alpha}</p>${searchSvg(s.evals, s.chosen)}</div>`;
  });
  return `<h2>Coefficient searches</h2><div class="searches">${charts.join('')}</div>` + (m.moreSearches ? `<p class="note">${m.moreSearches} more searches not drawn: <code>dfwe show NODE</code>.</p>` : '');
}

function timelineSection(m: ReportModel): string {
  const run = m.lastRun;
  if (!run) return `<h2>Timeline</h2><p class="note">No run of this pipeline is in the history yet: <code>dfwe run</code> records one.</p>`;
  const executed = run.nodes.filter((n) => n.lane !== undefined);
  const counts = countsOf(run);
  const intro = `<p class="note">Run <code>${esc(run.id)}</code> (${esc(run.status)}), started ${esc(run.start.startedAt)}: ${counts.ran} ran, ${counts.cached ?? '—'} cached, ${counts.failed} failed.</p>`;
  if (executed.length === 0) return `<h2>Timeline of the last run</h2>${intro}<p class="note">Every node came from the cache: nothing ran.</p>`;
  const lanes = maxOf(executed.map((n) => n.lane!)) + 1;
  const stages = [...new Set(executed.map((n) => n.stage))];
  const bars: Bar[] = executed.map((n) => ({ lane: n.lane!, start: n.start / 1000, end: (n.start + n.ms) / 1000, label: n.gpus ? `${n.id} (GPU ${n.gpus.join(',')})` : n.id, stage: n.stage, failed: n.state === 'failed' }));
  const slowest = [...executed].sort((a, b) => b.ms - a.ms).slice(0, 10);
  const table = `<table id="slowest"><thead><tr><th>slowest nodes</th><th>stage</th><th class="n">time</th><th class="n">peak memory</th><th>GPU</th><th>state</th></tr></thead><tbody>` +
    slowest.map((n) => `<tr><td><code>${esc(n.id)}</code></td><td>${esc(n.stage)}</td><td class="n">${secs(n.ms)}</td><td class="n">${mib(n.rss)}</td><td>${esc(n.gpus?.join(',') ?? '')}</td><td>${esc(n.state)}</td></tr>`).join('') + '</tbody></table>';
  return `<h2>Timeline of the last run</h2>${intro}<div class="panel" id="timeline">${timelineSvg(bars, lanes, stages)}</div><div style="margin-top:10px">${table}</div>`;
}

function dagSection(m: ReportModel): string {
  const { svg, boxes, collapsed } = dagSvg(m.project.graph, m.stateOf);
  const n = m.project.graph.order.length;
  return `<h2>Pipeline graph</h2><p class="note">${n} nodes${collapsed ? `, drawn as ${boxes} boxes: ${collapsed} large stage${collapsed === 1 ? ' is' : 's are'} one box each, with the count of its nodes and a bar of their states` : ''}. ${stateLegend()}</p><div class="panel" id="dag">${svg}</div>`;
}

function historySection(m: ReportModel): string {
  if (m.history.length === 0) return '';
  const runs = m.history.slice(-15);
  const prev = (i: number): ReportModel['history'][number] | undefined => m.history[m.history.length - runs.length + i - 1];
  return `<h2>Run history</h2><table id="history"><thead><tr><th>run</th><th>started</th><th>changed</th><th class="n">ran</th><th class="n">cached</th><th class="n">failed</th><th class="n">avg delta</th><th>status</th></tr></thead><tbody>` +
    runs.map((r, i) => `<tr><td><code>${esc(r.id)}</code></td><td>${esc(r.start.startedAt.replace('T', ' ').slice(0, 19))}</td><td>${esc(changedSince(prev(i), r))}</td><td class="n">${r.end?.ran ?? '—'}</td><td class="n">${r.end?.cached ?? '—'}</td><td class="n">${r.end?.failed ?? '—'}</td><td class="n"${deltaClass(r.end?.report?.averageDelta)}>${signed(r.end?.report?.averageDelta)}</td><td>${esc(r.status)}</td></tr>`).join('') +
    `</tbody></table><p class="note"><code>dfwe runs</code> lists them; <code>dfwe diff A B</code> compares two.</p>`;
}

export function renderPage(m: ReportModel): string {
  const p = m.project;
  const run = m.lastRun;
  const cards = [
    [String(p.graph.order.length), 'nodes'],
    [String([...m.decisions.values()].filter((d) => d.state === 'cached').length), 'up to date'],
    ...(run?.end ? [[String(run.end.ran), 'ran in the last run'], [String(run.end.failed), 'failed in the last run']] : []),
    ...(m.averageDelta !== undefined ? [[signed(m.averageDelta), 'average delta']] : []),
  ];
  const git = run?.start.git ? ` · git ${esc(run.start.git.commit.slice(0, 12))}${run.start.git.dirty ? ' (dirty)' : ''}` : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>dfwe report: ${esc(p.name)}</title><style>${CSS}</style></head><body><main>` +
    `<h1>${esc(p.name)}</h1><p class="sub"><code>${esc(p.displayPath)}</code> · report written ${esc(new Date().toISOString().replace('T', ' ').slice(0, 19))} UTC by dfwe ${esc(DFWE_VERSION)}${git}</p>` +
    `<div class="cards">${cards.map(([v, l]) => `<div class="card"><b>${esc(v!)}</b><span>${esc(l!)}</span></div>`).join('')}</div>` +
    metricsSection(m) + heatmapSection(m) + comparedSection(m) + searchSection(m) + timelineSection(m) + dagSection(m) + historySection(m) +
    `</main></body></html>\n`;
}
