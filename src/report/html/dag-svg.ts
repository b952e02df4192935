import dagre from '@dagrejs/dagre';
import type { Graph } from '../../graph.js';
import { esc } from './escape.js';

/*
 * The pipeline's graph as SVG, laid out by dagre (layered, top to bottom). A stage with more than
 * COLLAPSE_AT nodes (a sweep) is drawn as one box with its node count and how many are in each
 * state, so a sweep of thousands of nodes stays a picture of its stages; a graph that would still
 * have more than MAX_BOXES boxes is drawn one box per stage.
 */

export type NodeState = 'ran' | 'cached' | 'failed' | 'outdated';

export const STATE_COLOURS: Record<NodeState, string> = { ran: '#2e7d32', cached: '#90a4ae', failed: '#c62828', outdated: '#f9a825' };
const STATE_LABELS: Record<NodeState, string> = { ran: 'ran in the last run', cached: 'cached from an earlier run', failed: 'failed', outdated: 'will run (not up to date)' };

const COLLAPSE_AT = 12;
const MAX_BOXES = 400;
const BOX_H = 34;
const CHAR_W = 6.6;

interface Box {
  key: string;
  label: string;
  /** A node's id, or a collapsed stage's name. */
  node?: string;
  stage: string;
  counts: Partial<Record<NodeState, number>>;
  total: number;
}

export function dagSvg(graph: Graph, stateOf: (id: string) => NodeState): { svg: string; boxes: number; collapsed: number } {
  const perStage = new Map<string, number>();
  for (const n of graph.order) perStage.set(n.stage, (perStage.get(n.stage) ?? 0) + 1);
  let collapsedStages = new Set([...perStage].filter(([, c]) => c > COLLAPSE_AT).map(([s]) => s));
  const boxCount = (): number => [...perStage].reduce((a, [s, c]) => a + (collapsedStages.has(s) ? 1 : c), 0);
  if (boxCount() > MAX_BOXES) collapsedStages = new Set(perStage.keys());

  const boxes = new Map<string, Box>();
  const boxOf = new Map<string, string>();
  for (const n of graph.order) {
    const collapsed = collapsedStages.has(n.stage);
    const key = collapsed ? `stage:${n.stage}` : `node:${n.id}`;
    let box = boxes.get(key);
    if (!box) {
      box = { key, label: collapsed ? n.stage : n.id, node: collapsed ? undefined : n.id, stage: n.stage, counts: {}, total: 0 };
      boxes.set(key, box);
    }
    const st = stateOf(n.id);
    box.counts[st] = (box.counts[st] ?? 0) + 1;
    box.total++;
    boxOf.set(n.id, key);
  }

  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 18, ranksep: 42, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const widthOf = (b: Box): number => Math.min(260, Math.max(70, (b.node ? b.label.length : b.label.length + 8) * CHAR_W + 20));
  for (const b of boxes.values()) g.setNode(b.key, { width: widthOf(b), height: b.node ? BOX_H : BOX_H + 14 });
  for (const n of graph.order) {
    for (const d of graph.downstream.get(n.id)!) {
      const from = boxOf.get(n.id)!;
      const to = boxOf.get(d)!;
      if (from !== to && !g.hasEdge(from, to)) g.setEdge(from, to);
    }
  }
  dagre.layout(g);

  // The picture's bounds are what is drawn: dagre routes some edges outside its own width, and a
  // collapsed stage's card and count stick out of its box; the viewBox holds them all.
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  const cover = (x0: number, y0: number, x1: number, y1: number): void => {
    minX = Math.min(minX, x0);
    minY = Math.min(minY, y0);
    maxX = Math.max(maxX, x1);
    maxY = Math.max(maxY, y1);
  };
  const parts: string[] = [];
  for (const e of g.edges()) {
    const pts = g.edge(e).points ?? [];
    if (pts.length < 2) continue;
    for (const p of pts as { x: number; y: number }[]) cover(p.x - 6, p.y - 6, p.x + 6, p.y + 6);
    const d = `M${pts.map((p: { x: number; y: number }) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join('L')}`;
    parts.push(`<path class="dag-edge" d="${d}" marker-end="url(#dag-arrow)"/>`);
  }
  for (const b of boxes.values()) {
    const l = g.node(b.key);
    const w = l.width;
    const h = l.height;
    const x = l.x! - w / 2;
    const y = l.y! - h / 2;
    const main = mainState(b);
    const label = b.label.length * CHAR_W > w - 12 ? `${b.label.slice(0, Math.floor((w - 16) / CHAR_W))}…` : b.label;
    const textW = ((b.node ? label : `${label} ×${b.total}`).length * CHAR_W) / 2;
    cover(Math.min(x, l.x! - textW), y - (b.node ? 0 : 4), Math.max(x + w + (b.node ? 0 : 4), l.x! + textW), y + h);
    const tooltip = b.node
      ? `${b.node}: ${STATE_LABELS[main]}`
      : `${b.stage}: ${b.total} nodes (${Object.entries(b.counts).map(([s, c]) => `${c} ${s}`).join(', ')})`;
    if (b.node) {
      parts.push(`<g class="dag-node" data-node="${esc(b.node)}" data-stage="${esc(b.stage)}" data-state="${main}"><title>${esc(tooltip)}</title>` +
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h}" rx="5" fill="${STATE_COLOURS[main]}"/>` +
        `<text x="${l.x!.toFixed(1)}" y="${(l.y! + 4).toFixed(1)}">${esc(label)}</text></g>`);
    } else {
      // A collapsed stage: a stack of cards, with a bar of its nodes' states along its foot.
      let bx = x;
      const bar = (Object.entries(b.counts) as [NodeState, number][]).map(([s, c]) => {
        const bw = (w * c) / b.total;
        const r = `<rect x="${bx.toFixed(1)}" y="${(y + h - 7).toFixed(1)}" width="${bw.toFixed(1)}" height="7" fill="${STATE_COLOURS[s]}"/>`;
        bx += bw;
        return r;
      }).join('');
      parts.push(`<g class="dag-group" data-stage="${esc(b.stage)}" data-count="${b.total}" data-state="${main}"><title>${esc(tooltip)}</title>` +
        `<rect x="${(x + 4).toFixed(1)}" y="${(y - 4).toFixed(1)}" width="${w.toFixed(1)}" height="${h}" rx="5" class="dag-card"/>` +
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h}" rx="5" fill="${STATE_COLOURS[main]}"/>${bar}` +
        `<text x="${l.x!.toFixed(1)}" y="${(l.y! - 2).toFixed(1)}">${esc(label)} ×${b.total}</text></g>`);
    }
  }
  if (!Number.isFinite(minX)) [minX, minY, maxX, maxY] = [0, 0, 0, 0];
  const pad = 4;
  const [vx, vy] = [Math.floor(minX - pad), Math.floor(minY - pad)];
  const [width, height] = [Math.ceil(maxX + pad) - vx, Math.ceil(maxY + pad) - vy];
  const svg = `<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="${vx} ${vy} ${width} ${height}" role="img" aria-label="pipeline graph">` +
    `<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#78909c"/></marker></defs>${parts.join('')}</svg>`;
  return { svg, boxes: boxes.size, collapsed: [...collapsedStages].length };
}

/** A box's colour: failed if any node failed, else outdated if any will run, else ran if any ran. */
function mainState(b: Box): NodeState {
  for (const s of ['failed', 'outdated', 'ran'] as const) if (b.counts[s]) return s;
  return 'cached';
}

export function stateLegend(): string {
  return (Object.keys(STATE_COLOURS) as NodeState[]).map((s) => `<span class="swatch" style="background:${STATE_COLOURS[s]}"></span>${esc(STATE_LABELS[s])}`).join(' ');
}
