import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { REPO } from './helpers.js';

/*
 * The layers of docs/ARCHITECTURE.md, held against the code's imports (type imports included:
 * they tie modules as much as any). Lowest first; a module may import its own layer and those below.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['src/util/', 'src/diagnostics.ts', 'src/version.ts'],
  // What every layer reads: the pipeline's node shape and path rules, the plug-in interfaces, keys.
  ['src/pipeline/types.ts', 'src/pipeline/paths.ts', 'src/stage-type.ts', 'src/executor.ts', 'src/keys/', 'src/workspace-bounds.ts', 'src/checkpoint/'],
  ['src/merge/', 'src/ml/', 'src/search/'],
  ['stages/'],
  ['src/cache/'],
  ['src/pipeline/', 'src/graph.ts'],
  // The project, a node's keys and cache lookup (node-keys.ts), the report's comparison data.
  ['src/project.ts', 'src/expansion-memo.ts', 'src/node-keys.ts', 'src/comparison.ts'],
  ['src/execute/'],
  // The engine records each run in the history; commands and the report read it back.
  ['src/history/'],
  ['src/engine/'],
  ['src/report/'],
  ['src/commands/', 'src/cli-program.ts', 'src/cli.ts'],
];

function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.ts')) out.push(join(dir, e.name));
    }
  };
  walk('src');
  walk('stages');
  return out;
}

/** Each source file's imports of other source files: static, re-exports and import('…'). */
function importGraph(): Map<string, string[]> {
  const files = sources();
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(join(REPO, f), 'utf8');
    const to = new Set<string>();
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)) {
      const target = normalize(join(dirname(f), m[1] ?? m[2]!)).replace(/\.js$/, '.ts');
      if (known.has(target)) to.add(target);
    }
    graph.set(f, [...to]);
  }
  return graph;
}

const layerOf = (f: string): number => LAYERS.findIndex((l) => l.some((p) => f === p || (p.endsWith('/') && f.startsWith(p))));

test('the import graph parses: every source file is found with its imports', () => {
  const graph = importGraph();
  assert.ok(graph.size > 150, `${graph.size} files`);
  assert.ok(graph.get('src/cli.ts')!.includes('src/cli-program.ts'));
  assert.ok(graph.get('src/cli-program.ts')!.includes('src/commands/run.ts'), 'a dynamic import is an edge');
});

test('no module imports itself through others (no import cycle)', () => {
  const graph = importGraph();
  // Tarjan's strongly connected components: any of more than one file is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v)!) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)!.includes(v)) cycles.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  assert.deepEqual(cycles, []);
});

test('every module has a layer, and no import runs up one', () => {
  const graph = importGraph();
  assert.deepEqual([...graph.keys()].filter((f) => layerOf(f) < 0), [], 'modules with no layer: add them to LAYERS and to docs/ARCHITECTURE.md');
  const upward: string[] = [];
  for (const [from, tos] of graph) for (const to of tos) if (layerOf(to) > layerOf(from)) upward.push(`${from} -> ${to}`);
  assert.deepEqual(upward, [], 'imports that run up a layer');
});
