import { createRequire } from 'node:module';
import type { EChartsOption } from 'echarts';
import { maxOf } from '../../util/arrays.js';

/*
 * The report's charts, drawn by Apache ECharts in its server-side mode: each is an SVG string put
 * into the page as it is, so the page needs no script and no network to show them. ECharts marks
 * each drawn data item (ecmeta_series_index, ecmeta_data_index), which is how a test counts the
 * points a chart shows.
 */

// Required, not imported: ECharts' single-file CommonJS build loads in ≈70 ms, its ES modules in ≈350.
const echarts = createRequire(import.meta.url)('echarts') as typeof import('echarts');

const FONT = { fontFamily: 'system-ui, -apple-system, Segoe UI, sans-serif', fontSize: 11 };

function render(option: EChartsOption, width: number, height: number): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption({ animation: false, textStyle: FONT, ...option });
    return chart.renderToSVGString();
  } finally {
    // Disposed at once: a chart left alive keeps the process running.
    chart.dispose();
  }
}

export interface Bar {
  lane: number;
  start: number;
  end: number;
  label: string;
  stage: string;
  failed: boolean;
}

const PALETTE = ['#5470c6', '#91cc75', '#fac858', '#73c0de', '#3ba272', '#fc8452', '#9a60b4', '#ea7ccc', '#8d6e63', '#26a69a'];

/** One bar per node, in its job slot, from its start to its end (seconds from the run's start). */
export function timelineSvg(bars: Bar[], lanes: number, stages: string[]): string {
  const colour = new Map(stages.map((s, i) => [s, PALETTE[i % PALETTE.length]!]));
  const height = Math.min(60 + 26 * lanes, 900) + 40;
  return render({
    grid: { left: 70, right: 20, top: 30, bottom: 40 },
    legend: { top: 0, data: stages.slice(0, 12), textStyle: FONT },
    xAxis: { type: 'value', name: 'seconds', nameLocation: 'middle', nameGap: 24, min: 0 },
    yAxis: { type: 'category', data: Array.from({ length: lanes }, (_, i) => `slot ${i + 1}`), inverse: true },
    series: stages.map((stage) => ({
      type: 'custom',
      name: stage,
      itemStyle: { color: colour.get(stage) },
      encode: { x: [1, 2], y: 0 },
      data: bars.filter((b) => b.stage === stage).map((b) => ({ value: [b.lane, b.start, b.end], name: b.label, itemStyle: b.failed ? { color: '#c62828' } : undefined })),
      renderItem: (_params: unknown, api: { value(i: number): number; coord(p: number[]): number[]; size(p: number[]): number[]; visual(k: string): string }) => {
        const lane = api.value(0);
        const s = api.coord([api.value(1), lane]);
        const e = api.coord([api.value(2), lane]);
        const h = api.size([0, 1])[1]! * 0.7;
        return { type: 'rect', shape: { x: s[0]!, y: s[1]! - h / 2, width: Math.max(1, e[0]! - s[0]!), height: h }, style: { fill: api.visual('color') } };
      },
    })) as EChartsOption['series'],
  }, 900, height);
}

export interface Evaluation {
  score: number;
  source: string;
}

/** A search's dev score at each evaluation, the best so far as a line, the chosen one marked. */
export function searchSvg(evals: Evaluation[], chosen: number): string {
  let best = -Infinity;
  const bestSoFar = evals.map((e, i) => [i + 1, (best = Math.max(best, e.score))]);
  return render({
    grid: { left: 50, right: 16, top: 28, bottom: 40 },
    legend: { top: 0, data: ['evaluation', 'best so far'], textStyle: FONT },
    xAxis: { type: 'value', name: 'evaluation', nameLocation: 'middle', nameGap: 24, min: 0, max: evals.length + 1, minInterval: 1 },
    yAxis: { type: 'value', name: 'dev score', scale: true },
    series: [
      {
        type: 'scatter', name: 'evaluation', symbolSize: 6, itemStyle: { color: '#5470c6' },
        data: evals.map((e, i) => ({ value: [i + 1, e.score], name: e.source, itemStyle: i === chosen ? { color: '#c62828', borderColor: '#000', borderWidth: 1 } : undefined, symbolSize: i === chosen ? 11 : 6 })),
      },
      { type: 'line', name: 'best so far', step: 'end', showSymbol: false, silent: true, lineStyle: { color: '#91cc75', width: 2 }, itemStyle: { color: '#91cc75' }, data: bestSoFar },
    ] as EChartsOption['series'],
  }, 440, 250);
}

/**
 * Delta by target (rows, first at the top) and source set (columns), diverging around zero. The
 * colour scale spans the 75th percentile of |delta|, so that a few outliers do not wash out the
 * rest; cells beyond it take the end colour, and every label shows the cell's own delta.
 */
export function heatmapSvg(rows: string[], cols: string[], cells: [col: number, row: number, delta: number][]): string {
  const sorted = cells.map((c) => Math.abs(c[2])).sort((a, b) => a - b);
  const extent = Math.max(0.01, sorted[Math.min(sorted.length - 1, Math.floor(0.75 * sorted.length))] ?? 0);
  const clipped = sorted.length > 0 && sorted[sorted.length - 1]! > extent;
  const longest = maxOf(cols.map((c) => c.length));
  const rotate = cols.length > 6 ? 35 : 0;
  const bottom = 30 + (rotate ? Math.min(160, longest * 4.2) : 16);
  const width = Math.min(1400, 260 + 46 * cols.length);
  const height = 30 + 32 * rows.length + bottom;
  const fmt = (x: number): string => `${x > 0 ? '+' : ''}${x.toFixed(2)}`;
  return render({
    grid: { left: 130, right: 110, top: 10, bottom },
    xAxis: { type: 'category', data: cols, axisLabel: { rotate, interval: 0, fontSize: 10 }, splitArea: { show: true } },
    yAxis: { type: 'category', data: rows, inverse: true, splitArea: { show: true } },
    visualMap: {
      min: -extent, max: extent, calculable: false, orient: 'vertical', right: 0, top: 'middle', itemHeight: 110, itemWidth: 12,
      text: [`${fmt(extent)}${clipped ? ' or more' : ''}`, `${fmt(-extent)}${clipped ? ' or less' : ''}`], inRange: { color: ['#b2182b', '#f7f7f7', '#2166ac'] },
    },
    series: [{
      type: 'heatmap',
      data: cells.map(([c, r, d]) => [c, r, Math.max(-extent, Math.min(extent, d))]),
      label: { show: cols.length <= 30, fontSize: 10, formatter: (p: { dataIndex: number }) => fmt(cells[p.dataIndex]![2]) },
    }] as EChartsOption['series'],
  }, width, height);
}
