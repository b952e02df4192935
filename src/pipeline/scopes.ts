import { canonicalJson } from '../util/canonical.js';
import { dict } from '../util/dict.js';
import { toCel } from './expressions.js';
import { UpstreamFailed } from './resolver.js';
import type { StagePlan } from './stage-plans.js';
import type { NodeDef } from './types.js';

/*
 * What an expression sees: params, the variables bound where it is evaluated, and `stages.X`, the
 * instances of X that agree with it on the foreach variables they share. Every read is recorded,
 * since the variables an instance reads are its identity and the instances it reads its upstream.
 */

export interface Instance {
  node: NodeDef;
  /** Its foreach variables' values. */
  foreach: Record<string, unknown>;
  /** The variables (of its member and foreach) its identity depends on. */
  identity: Set<string>;
}

/** Instances an expression referred to, with the outputs it read of each. */
export type Refs = Map<Instance, Set<string>>;

/** Per sweep member: the instances of each stage, and which variables each stage's foreach domain read. */
export interface MemberState {
  binding: Record<string, unknown>;
  instances: Map<string, Instance[]>;
  domainReads: Map<string, Set<string>>;
  /** Stages with an instance that failed to expand in this member: reading them is no new error. */
  failed: Set<string>;
  /** Instances of a stage by the values of some of its foreach variables (see matchingInstances). */
  index: Map<string, Map<string, Instance[]>>;
}

export function memberState(binding: Record<string, unknown>): MemberState {
  return { binding, instances: new Map(), domainReads: new Map(), failed: new Set(), index: new Map() };
}

/** An instance's outputs, noting each one an expression reads (cel-js looks up own properties). */
function watchOuts<T extends object>(outs: T, onRead: (name: string) => void): T {
  const note = (t: object, k: string | symbol): void => {
    if (typeof k === 'string' && Object.hasOwn(t, k)) onRead(k);
  };
  return new Proxy(outs, {
    get: (t, k) => (note(t, k), Reflect.get(t, k)),
    getOwnPropertyDescriptor: (t, k) => (note(t, k), Reflect.getOwnPropertyDescriptor(t, k)),
    ownKeys: (t) => (Object.keys(t).forEach((k) => onRead(k)), Reflect.ownKeys(t)),
  });
}

/**
 * The params as an expression sees them, noting what it reads: a key (`params.lr_for[tasks]`)
 * notes that entry; a walk over a map notes each entry it passes and, once it reaches the end,
 * the whole map (so a key added later counts); its size, or a callback over it, the whole map.
 * cel-js looks at a map's first entry to learn its type: that notes the first entry only. Maps
 * stay Maps to cel-js (instanceof, constructor).
 */
function tracedParams(m: unknown, path: string[], note: (path: string[]) => void): unknown {
  if (!(m instanceof Map)) return m;
  const walk = (target: Map<string, unknown>, yielding: (k: string, v: unknown) => unknown) => (): IterableIterator<unknown> => {
    const it = target.entries();
    const traced: IterableIterator<unknown> = {
      next() {
        const r = it.next();
        if (r.done) {
          note(path);
          return r;
        }
        const [k, v] = r.value;
        note([...path, k]);
        return { done: false, value: yielding(k, v) };
      },
      [Symbol.iterator]() {
        return traced;
      },
    };
    return traced;
  };
  return new Proxy(m, {
    get(target: Map<string, unknown>, prop) {
      if (prop === 'get') {
        return (k: string) => {
          const v = target.get(k);
          if (v instanceof Map) return tracedParams(v, [...path, k], note);
          note([...path, k]);
          return v;
        };
      }
      if (prop === 'has') {
        return (k: string) => {
          note([...path, k]);
          return target.has(k);
        };
      }
      if (prop === 'size') {
        note(path);
        return target.size;
      }
      if (prop === 'entries' || prop === Symbol.iterator) return walk(target, (k, v) => [k, v]);
      if (prop === 'keys') return walk(target, (k) => k);
      if (prop === 'values') return walk(target, (_k, v) => v);
      if (prop === 'forEach') {
        note(path);
        return target.forEach.bind(target);
      }
      return Reflect.get(target, prop, target);
    },
  });
}

/** Marks a param entry read but absent: adding it later changes the key. */
const ABSENT = { '\u0000': 'absent' };

/** The part of `params` at the paths read: an entry read whole is kept whole, a map read by key keeps only those keys. */
export function paramsAt(params: Record<string, unknown>, paths: readonly string[][]): Record<string, unknown> {
  const out = dict<unknown>();
  // Shortest first: an entry read whole makes the reads below it redundant.
  for (const path of [...paths].sort((a, b) => a.length - b.length)) {
    if (path.length === 0) return { ...params };
    let src: unknown = params;
    let dst: Record<string, unknown> = out;
    for (let i = 0; i < path.length; i++) {
      const k = path[i]!;
      const has = typeof src === 'object' && src !== null && !Array.isArray(src) && Object.hasOwn(src, k);
      const v = has ? (src as Record<string, unknown>)[k] : undefined;
      if (i === path.length - 1) {
        if (!Object.hasOwn(dst, k)) dst[k] = has ? v : ABSENT;
        break;
      }
      if (Object.hasOwn(dst, k) && (typeof dst[k] !== 'object' || dst[k] === null || Array.isArray(dst[k]) || dst[k] === ABSENT || !isPartial(dst[k]))) break; // read whole already
      if (!has || typeof v !== 'object' || v === null || Array.isArray(v)) {
        if (!Object.hasOwn(dst, k)) dst[k] = has ? v : ABSENT;
        break;
      }
      if (!Object.hasOwn(dst, k)) dst[k] = partial();
      dst = dst[k] as Record<string, unknown>;
      src = v;
    }
  }
  return out;
}

/** Maps built from reads by key, told apart from a map value read whole (which holds the same keys or more). */
const PARTIAL = Symbol('partial');
function partial(): Record<string, unknown> {
  const o = dict<unknown>();
  Object.defineProperty(o, PARTIAL, { value: true, enumerable: false });
  return o;
}
function isPartial(o: unknown): boolean {
  return typeof o === 'object' && o !== null && (o as Record<symbol, unknown>)[PARTIAL] === true;
}

export class Scopes {
  private readonly celParams: unknown;
  /** The param entries read through each instance's `reads` set, as JSON paths. */
  private readonly paramReads = new WeakMap<Set<string>, Set<string>>();

  constructor(
    private readonly plans: ReadonlyMap<string, StagePlan>,
    params: Record<string, unknown>,
  ) {
    this.celParams = toCel(params);
  }

  private noteParam(reads: Set<string>, path: string[]): void {
    let paths = this.paramReads.get(reads);
    if (!paths) this.paramReads.set(reads, (paths = new Set()));
    paths.add(JSON.stringify(path));
  }

  /** The param entries read by contexts of this `reads` set. */
  paramPaths(reads: Set<string>): string[][] {
    return [...(this.paramReads.get(reads) ?? [])].sort().map((p) => JSON.parse(p) as string[]);
  }

  /**
   * A context whose reads are recorded: the variables an instance depends on are those its
   * expressions actually read, so `size(tasks) > 1 ? target : tasks[0]` needs `target` only for
   * multi-task sets.
   */
  context(state: MemberState, bound: Record<string, unknown>, reads: Set<string>, refs: Refs, outs?: Record<string, string>): object {
    const { plans, celParams } = this;
    const celBound = new Map(Object.entries(bound).map(([k, v]) => [k, toCel(v)]));
    const view = (key: string): unknown => this.stageView(key, state, bound, reads, refs);
    const stages = new Proxy(
      {},
      {
        get: (_t, key) => (typeof key === 'string' && plans.has(key) ? view(key) : undefined),
        has: (_t, key) => typeof key === 'string' && plans.has(key),
        // cel-js checks own properties before reading a map key
        getOwnPropertyDescriptor: (_t, key) => (typeof key === 'string' && plans.has(key) ? { enumerable: true, configurable: true, value: view(key) } : undefined),
      },
    );
    return new Proxy(
      {},
      {
        get: (_t, key) => {
          if (key === 'params') return tracedParams(celParams, [], (path) => this.noteParam(reads, path));
          if (key === 'stages') return stages;
          if (key === 'outs' && outs) return outs;
          if (typeof key === 'string' && celBound.has(key)) {
            reads.add(key);
            return celBound.get(key);
          }
          return undefined;
        },
        has: (_t, key) => key === 'params' || key === 'stages' || (key === 'outs' && !!outs) || (typeof key === 'string' && celBound.has(key)),
      },
    );
  }

  /**
   * `stages.X` seen from an instance: the instances of X that agree with it on shared foreach
   * variables. One instance gives its outputs; several (X fans out over a variable the reader
   * does not bind) give, for each output, the list of paths in X's foreach order.
   */
  private stageView(name: string, state: MemberState, bound: Record<string, unknown>, reads: Set<string>, refs: Refs): unknown {
    if (state.failed.has(name)) throw new UpstreamFailed(name);
    const plan = this.plans.get(name)!;
    const shared = plan.foreachVars.filter((v) => v in bound);
    shared.forEach((v) => reads.add(v));
    const matching = matchingInstances(name, state, shared, bound);
    for (const x of matching) {
      if (!refs.has(x)) refs.set(x, new Set());
      for (const v of x.identity) if (v in bound) reads.add(v);
    }
    const read = (o: string): void => matching.forEach((x) => refs.get(x)!.add(o));
    if (shared.length === plan.foreachVars.length) return matching[0] ? { outs: watchOuts(matching[0].node.outs, read) } : undefined;
    state.domainReads.get(name)?.forEach((v) => v in bound && reads.add(v));
    const outNames = matching[0] ? Object.keys(matching[0].node.outs) : [];
    return { outs: watchOuts(Object.fromEntries(outNames.map((o) => [o, matching.map((x) => x.node.outs[o]!)])), read) };
  }
}

/**
 * The instances of stage `name` that agree with `bound` on the foreach variables `shared`:
 * looked up in an index by those variables' values, built once per member and set of variables,
 * so a reference costs the same whether the stage has ten instances or a hundred thousand.
 */
export function matchingInstances(name: string, state: MemberState, shared: string[], bound: Record<string, unknown>): Instance[] {
  const all = state.instances.get(name) ?? [];
  if (shared.length === 0) return all;
  const indexKey = `${name}\0${shared.join('\0')}`;
  let index = state.index.get(indexKey);
  if (!index) {
    index = new Map();
    for (const x of all) {
      const k = canonicalJson(shared.map((v) => x.foreach[v]));
      const list = index.get(k);
      if (list) list.push(x);
      else index.set(k, [x]);
    }
    state.index.set(indexKey, index);
  }
  return index.get(canonicalJson(shared.map((v) => bound[v]))) ?? [];
}
