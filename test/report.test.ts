import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dfwe, REPO, workspace } from './helpers.js';
import { heatmapSection } from '../src/report/html/page.js';
import { taskRows, type Pair } from '../src/comparison.js';

/*
 * `dfwe report` opened in a real headless Chromium (Debian's, which .ci/run installs and where
 * DFWE_TEST_BROWSER=required makes these tests unskippable). The page must show one graph element
 * per node (or per collapsed stage), the metrics `dfwe metrics --json` gives, one point per
 * evaluation of the search, log no errors and fetch nothing. A screenshot of the quickstart's
 * report goes to bench/results/.
 */

const CHROMIUM = '/usr/bin/chromium';
const hasBrowser = existsSync(CHROMIUM);
if (!hasBrowser && process.env.DFWE_TEST_BROWSER === 'required') throw new Error(`DFWE_TEST_BROWSER=required but ${CHROMIUM} is missing`);
const skip = hasBrowser ? false : `no ${CHROMIUM} (apt-get install chromium)`;
const SHOTS = join(REPO, 'bench/results');

interface Opened {
  page: import('playwright-core').Page;
  errors: string[];
  requests: string[];
  close(): Promise<void>;
}

async function openInBrowser(file: string): Promise<Opened> {
  const { chromium } = await import('playwright-core');
  // The flags keep Chromium from reaching for the network at start (this machine has none).
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => {
    if (!r.url().startsWith('file://')) requests.push(r.url());
  });
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  return { page, errors, requests, close: () => browser.close() };
}

test('the quickstart report in headless Chromium: a graph element per node, the metrics table of dfwe metrics, a point per search evaluation, no errors', { skip }, async () => {
  const ws = workspace();
  const r = dfwe(ws, ['run']);
  assert.equal(r.code, 0, r.stderr);
  const rep = dfwe(ws, ['report']);
  assert.equal(rep.code, 0, rep.stderr);
  const file = rep.stdout.trim();
  assert.equal(file, join(ws, 'report.html'));
  const html = readFileSync(file, 'utf8');
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'self-contained: no script, no address to fetch');

  const nodes = (JSON.parse(dfwe(ws, ['expand', '--json']).stdout) as { nodes: { id: string }[] }).nodes.map((n) => n.id);
  const metrics = JSON.parse(dfwe(ws, ['metrics', '--json']).stdout) as { tasks: { task: string; baseline: number; method: number; delta: number }[] };
  const search = JSON.parse(readFileSync(join(ws, 'out/interpolate/search'), 'utf8')) as { trace: unknown[]; alpha: number[] };

  const b = await openInBrowser(file);
  try {
    const { page } = b;
    const drawn = await page.locator('#dag .dag-node').evaluateAll((els) => els.map((e) => [e.getAttribute('data-node'), e.getAttribute('data-state')]));
    assert.equal(await page.locator('#dag .dag-group').count(), 0, 'nothing to collapse in 17 nodes');
    assert.deepEqual(drawn.map(([id]) => id).sort(), [...nodes].sort());
    assert.ok(drawn.every(([, s]) => s === 'ran'), 'every node ran in the last run');

    const rows = await page.locator('#metrics-table tbody tr[data-task]').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    assert.deepEqual(rows, metrics.tasks.map((t) => [t.task, t.baseline.toFixed(2), t.method.toFixed(2), `${t.delta > 0 ? '+' : ''}${t.delta.toFixed(2)}`]));

    const chart = page.locator('.search-chart[data-node="interpolate"]');
    assert.equal(await chart.locator('[ecmeta_ssr_type="chart"][ecmeta_series_index="0"]').count(), search.trace.length, 'one point per evaluation');
    assert.equal(await chart.getAttribute('data-evaluations'), String(search.trace.length));
    assert.match((await chart.textContent()) ?? '', new RegExp(`finetune\\[tasks=emotion\\] ${search.alpha[0]!.toFixed(3)}`), 'the chosen α, by the node of each model');

    assert.equal(await page.locator('#timeline [ecmeta_ssr_type="chart"]').count(), nodes.length, 'a timeline bar per node that ran');
    assert.equal(await page.locator('#slowest tbody tr').count(), 10);
    assert.ok((await page.locator('#dag svg').boundingBox())!.width > 300, 'the graph is drawn');
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'report-quickstart.png'), fullPage: true });
    assert.deepEqual(b.errors, []);
    assert.deepEqual(b.requests, []);
  } finally {
    await b.close();
  }

  // Runs compared (--run, repeatable): the same pipeline with another optimizer, each run's delta in its own column.
  assert.equal(dfwe(ws, ['run', '--param', 'optimizer=uniform']).code, 0);
  const runs = (JSON.parse(dfwe(ws, ['runs', '--json']).stdout) as { runs: { id: string; averageDelta: number }[] }).runs;
  assert.equal(runs[0]!.averageDelta, metrics.tasks[0]!.delta, "the history keeps the report's average delta");
  const both = dfwe(ws, ['report', '--run', runs[0]!.id, '--run', 'last', '-o', join(ws, 'compared.html')]);
  assert.equal(both.code, 0, both.stderr);
  const page = readFileSync(join(ws, 'compared.html'), 'utf8');
  const table = /<table id="compared-table">(.*?)<\/table>/s.exec(page)?.[1] ?? '';
  assert.match(table, /<th class="n" title="[^"]+">optimizer=nelder-mead<\/th><th class="n" title="[^"]+">optimizer=uniform<\/th>/);
  const cells = [...(/<tr data-task="emotion">(.*?)<\/tr>/s.exec(table)?.[1] ?? '').matchAll(/<td class="n"[^>]*>([^<]*)<\/td>/g)].map((m) => m[1]);
  const sign = (x: number): string => `${x > 0 ? '+' : ''}${x.toFixed(2)}`;
  assert.deepEqual(cells.slice(0, 2), [sign(runs[0]!.averageDelta), sign(runs[1]!.averageDelta)]);
  assert.equal(cells[2], sign((runs[0]!.averageDelta + runs[1]!.averageDelta) / 2));
  assert.equal(dfwe(ws, ['report', '--run', 'nope']).code, 2);
});

test('a sweep of hundreds of nodes: its large stages drawn as one box each, with their counts', { skip }, async () => {
  const ws = workspace({
    'dfwe.yaml': `
version: 1
sweep:
  i: \${{ range(300) }}
stages:
  prep:
    cmd: echo prep > out/prep.txt
    outs: { f: out/prep.txt }
  work:
    cmd: echo \${{ i }} > out/work/\${{ i }}.txt
    deps: [out/prep.txt]
    outs: { f: "out/work/\${{ i }}.txt" }
  gather:
    cmd: cat out/work/0.txt > out/gather.txt
    deps: [out/work/0.txt]
    outs: { f: out/gather.txt }
`,
  });
  assert.equal(dfwe(ws, ['run']).code, 0);
  const rep = dfwe(ws, ['report', '-o', join(ws, 'sweep.html')]);
  assert.equal(rep.code, 0, rep.stderr);
  const b = await openInBrowser(join(ws, 'sweep.html'));
  try {
    const groups = await b.page.locator('#dag .dag-group').evaluateAll((els) => els.map((e) => [e.getAttribute('data-stage'), e.getAttribute('data-count')]));
    assert.deepEqual(groups, [['work', '300']]);
    assert.deepEqual(await b.page.locator('#dag .dag-node').evaluateAll((els) => els.map((e) => e.getAttribute('data-node')).sort()), ['gather', 'prep']);
    assert.equal(await b.page.locator('#dag .dag-edge').count(), 2);
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});

test('a sweep report has a target × source-set heatmap of the delta, a cell per pair', () => {
  const pair = (task: string, sources: string[], delta: number): Pair => ({ task, method: `test_dfwe[target=${task},sources=${sources.join('+')}]`, vars: { target: task, sources }, methodScore: 50 + delta, baselineScore: 50, delta });
  const pairs = [pair('emotion', ['qa', 'topic'], 1.5), pair('emotion', ['qa', 'speaker'], -0.5), pair('qa', ['emotion', 'topic'], 0.25)];
  const html = heatmapSection({ pairs, rows: taskRows(pairs) });
  const cells = [...html.matchAll(/ecmeta_ssr_type="chart" [^>]*|<[^>]*ecmeta_series_index="0" ecmeta_data_index="(\d+)" ecmeta_ssr_type="chart"/g)];
  assert.equal(cells.length, 3);
  for (const label of ['emotion', 'qa', 'qa+topic', 'qa+speaker', 'emotion+topic', '+1.50', '-0.50', '+0.25']) assert.ok(html.includes(`>${label}<`), `shows ${label}`);
  assert.equal(heatmapSection({ pairs: pairs.slice(2), rows: taskRows(pairs.slice(2)) }), '', 'no sweep, no heatmap');
  // One outlier does not set the colour scale: it spans the 75th percentile, the outlier's label is its own.
  const wide = [...pairs, pair('qa', ['emotion', 'speaker'], 40), pair('qa', ['speaker', 'topic'], 0.1)];
  const clipped = heatmapSection({ pairs: wide, rows: taskRows(wide) });
  assert.ok(clipped.includes('>+1.50 or more<') && clipped.includes('>+40.00<'), 'scale to +1.50, the outlier labelled');
  assert.ok(html.includes('>+1.50<') && !html.includes('or more'), 'nothing to clip: the scale is the largest delta');
});
