import { UserError, type Diagnostic } from './diagnostics.js';
import type { NodeDef } from './pipeline/types.js';
import { MinHeap } from './util/heap.js';

export interface Graph {
  /** Nodes in a topological order (declaration order among equals). */
  order: NodeDef[];
  byId: Map<string, NodeDef>;
  upstream: Map<string, string[]>;
  downstream: Map<string, string[]>;
  /** For each node, its deps that another node produces: dep path → producing node id. */
  producedDeps: Map<string, Map<string, string>>;
  /** For each node, the outputs it reads of each upstream node (its key covers only these). */
  consumes: Map<string, Map<string, string[]>>;
  /**
   * Part of a pipeline (project.ts's openPart): the outputs (name to path) of the upstream nodes
   * outside the graph that its nodes read, served before it runs.
   */
  context?: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

/** A node's deps that no node produces: most nodes. Shared, never written. */
const NONE_PRODUCED: Map<string, string> = new Map();

/**
 * `outputsChecked`: these nodes' outputs were found not to overlap before (a memoised expansion).
 * Part of a pipeline (project.ts's openPart): `boundary` nodes are roots here whatever they read,
 * and `context` gives the outputs of nodes outside the graph that its nodes may read.
 */
export function buildGraph(nodes: NodeDef[], opts: { outputsChecked?: boolean; boundary?: ReadonlySet<string>; context?: ReadonlyMap<string, Readonly<Record<string, string>>> } = {}): Graph {
  const diagnostics: Diagnostic[] = [];
  const byId = new Map<string, NodeDef>();
  const index = new Map<string, number>();
  nodes.forEach((n, i) => {
    byId.set(n.id, n);
    index.set(n.id, i);
  });

  // Every path is written by one node only; nested outputs would make one overwrite the other.
  const outs = new OutputIndex();
  for (const [id, o] of opts.context ?? []) for (const [out, path] of Object.entries(o)) outs.add(path, id, out);
  for (const n of nodes) {
    for (const [out, path] of Object.entries(n.outs)) {
      const clash = opts.outputsChecked ? undefined : outs.overlapping(path);
      if (clash) {
        diagnostics.push({
          message: `output "${path}" of stage "${n.id}" overlaps output "${clash.path}" of stage "${clash.id}": each path has one producer`,
          location: n.loc.outs[out],
        });
      } else outs.add(path, n.id, out);
    }
  }

  const upstream = new Map<string, string[]>();
  const producedDeps = new Map<string, Map<string, string>>();
  const consumes = new Map<string, Map<string, string[]>>();
  const readOf = (n: NodeDef, u: string): string[] => (Object.hasOwn(n.refOuts, u) ? n.refOuts[u]! : []);
  for (const n of nodes) {
    if (opts.boundary?.has(n.id)) {
      upstream.set(n.id, []);
      producedDeps.set(n.id, NONE_PRODUCED);
      consumes.set(n.id, new Map());
      continue;
    }
    // Most nodes read other nodes only through references (20,000 of them were planned here at every command).
    if (n.deps.length === 0) {
      const ups = n.refs.length < 2 ? n.refs.slice() : [...new Set(n.refs)];
      upstream.set(n.id, ups);
      producedDeps.set(n.id, NONE_PRODUCED);
      consumes.set(n.id, new Map(ups.map((u) => [u, sortedUnique(readOf(n, u))])));
      continue;
    }
    const ups = new Set(n.refs);
    const produced = new Map<string, string>();
    const read = new Map<string, string[]>();
    n.deps.forEach((dep, i) => {
      const owner = outs.containing(dep);
      if (owner) {
        produced.set(dep, owner.id);
        ups.add(owner.id);
        (read.get(owner.id) ?? read.set(owner.id, []).get(owner.id)!).push(owner.out);
        return;
      }
      const inside = outs.inside(dep);
      if (inside) {
        diagnostics.push({
          message: `dependency "${dep}" of stage "${n.id}" contains "${inside.path}", an output of stage "${inside.id}": depend on that output itself`,
          location: n.loc.deps[i],
        });
      }
    });
    upstream.set(n.id, [...ups]);
    producedDeps.set(n.id, produced.size > 0 ? produced : NONE_PRODUCED);
    consumes.set(n.id, new Map([...ups].map((u) => [u, sortedUnique([...readOf(n, u), ...(read.get(u) ?? [])])])));
  }
  if (diagnostics.length > 0) throw new UserError(diagnostics);

  const downstream = new Map<string, string[]>(nodes.map((n) => [n.id, []]));
  const pending = new Int32Array(nodes.length);
  for (const [id, ups] of upstream) {
    for (const u of ups) {
      const below = downstream.get(u);
      // An upstream outside the graph (its context) is served before it runs.
      if (!below) continue;
      below.push(id);
      const j = index.get(id)!;
      pending[j] = pending[j]! + 1;
    }
  }

  // Kahn's algorithm; the queue keeps declaration order so plans and logs read like the file.
  const ready = new MinHeap();
  pending.forEach((left, i) => left === 0 && ready.push(i));
  const order: NodeDef[] = [];
  for (let i = ready.pop(); i !== undefined; i = ready.pop()) {
    const node = nodes[i]!;
    order.push(node);
    for (const d of downstream.get(node.id)!) {
      const j = index.get(d)!;
      if (--pending[j]! === 0) ready.push(j);
    }
  }
  // Nodes left out of the order are on a cycle or below one: only then is it looked for, to name it.
  if (order.length < nodes.length) {
    const cycle = findCycle(nodes, upstream)!;
    const first = byId.get(cycle[0]!)!;
    throw new UserError({
      message: cycle.length === 2 ? `stage "${cycle[0]}" depends on itself` : `dependency cycle: ${cycle.join(' → ')}`,
      location: first.loc.stage,
      hint: 'a stage reads another stage\'s output through ${{ stages.NAME.outs.OUT }} or a dep path; remove one link of the cycle',
    });
  }
  return { order, byId, upstream, downstream, producedDeps, consumes, context: opts.context };
}

/** The names, each once, sorted. */
function sortedUnique(names: readonly string[]): string[] {
  return names.length < 2 ? names.slice() : [...new Set(names)].sort();
}

export interface Owner {
  path: string;
  id: string;
  /** The output's name in its node. */
  out: string;
}

/** Output paths by owner, answering "which output contains / lies inside this path" in O(depth). */
export class OutputIndex {
  private readonly exact = new Map<string, Owner>();
  /** Every proper ancestor directory of an output → one output below it. */
  private readonly ancestors = new Map<string, Owner>();

  add(path: string, id: string, out: string): void {
    const owner = { path, id, out };
    this.exact.set(path, owner);
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
      const dir = path.slice(0, i);
      // One already there was added with every directory above it.
      if (this.ancestors.has(dir)) break;
      this.ancestors.set(dir, owner);
    }
  }

  /** The output that is `path` or one of its ancestors. */
  containing(path: string): Owner | undefined {
    for (let p = path; ; ) {
      const o = this.exact.get(p);
      if (o) return o;
      const i = p.lastIndexOf('/');
      if (i <= 0) return undefined;
      p = p.slice(0, i);
    }
  }

  /** An output strictly inside `path`. */
  inside(path: string): Owner | undefined {
    return this.ancestors.get(path);
  }

  overlapping(path: string): Owner | undefined {
    return this.containing(path) ?? this.inside(path);
  }
}

/** A cycle as a list of ids, first id repeated at the end; undefined when acyclic. Iterative:
 * a 10,000-stage chain must not overflow the call stack. */
function findCycle(nodes: NodeDef[], upstream: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1 = on the path, 2 = done
  for (const root of nodes) {
    if (state.has(root.id)) continue;
    const path: string[] = [root.id];
    const next: number[] = [0];
    state.set(root.id, 1);
    while (path.length > 0) {
      const id = path[path.length - 1]!;
      const ups = upstream.get(id) ?? [];
      const i = next[next.length - 1]!;
      if (i >= ups.length) {
        state.set(id, 2);
        path.pop();
        next.pop();
        continue;
      }
      next[next.length - 1] = i + 1;
      const u = ups[i]!;
      const s = state.get(u);
      if (s === 1) return [...path.slice(path.indexOf(u)), u].reverse();
      if (s === undefined) {
        state.set(u, 1);
        path.push(u);
        next.push(0);
      }
    }
  }
  return undefined;
}
