import { canonicalJson } from '../util/canonical.js';
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

export class Scopes {
  private readonly celParams: unknown;

  constructor(
    private readonly plans: ReadonlyMap<string, StagePlan>,
    params: Record<string, unknown>,
  ) {
    this.celParams = toCel(params);
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
          if (key === 'params') return celParams;
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
