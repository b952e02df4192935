import { UserError, type SourceLocation } from '../diagnostics.js';
import type { ExecutorKind } from '../executor.js';
import { canonicalJson } from '../util/canonical.js';
import { defaultOutPath, nodeId } from './naming.js';
import type { Resolver } from './resolver.js';
import { paramsAt, type Instance, type MemberState, type Refs, type Scopes } from './scopes.js';
import type { SourceFile } from './source.js';
import { outputEntries, type StagePlan } from './stage-plans.js';
import type { NodeDef, RawPipeline, RawStage } from './types.js';
import { validateResolved } from './validate.js';

/*
 * A stage's instances in one sweep member: one per combination of its foreach values, each with
 * its expressions evaluated, checked, named by the variables it read and turned into a node.
 * Identical instances of different members are one node.
 */

export const MAX_INSTANCES = 1_000_000;

/** Linux's limit on one argument (MAX_ARG_STRLEN, 32 pages, its NUL included): a command is one. */
const MAX_COMMAND_BYTES = 32 * 4096;

/** Stands for a default output path in a command until the node's id, which names it, is known. */
const OUT_MARK = '\u0001dfwe-out:';

export class Instances {
  /** Every node, by id, in the order first expanded. */
  readonly nodes = new Map<string, NodeDef>();
  /** Locations by data path: one object for a stage's thousands of instances (the memo stores each once). */
  private readonly locations = new Map<string, SourceLocation>();
  /** Canonical content of nodes claimed by more than one instance. */
  private readonly contents = new Map<string, string>();
  count = 0;

  constructor(
    private readonly raw: RawPipeline,
    private readonly source: SourceFile,
    private readonly resolver: Resolver,
    private readonly scopes: Scopes,
    private readonly executors: ReadonlyMap<string, ExecutorKind> | undefined,
  ) {}

  private locate(path: (string | number)[]): SourceLocation {
    const k = JSON.stringify(path);
    let l = this.locations.get(k);
    if (!l) this.locations.set(k, (l = this.source.locate(path)));
    return l;
  }

  /** The stage's instances in this member: its foreach domains, in order, each may read earlier ones. */
  expandStage(plan: StagePlan, state: MemberState): void {
    const at = ['stages', plan.name];
    let combos: Record<string, unknown>[] = [{}];
    const domainReads = new Set<string>();
    for (const v of plan.foreachVars) {
      const next: Record<string, unknown>[] = [];
      for (const c of combos) {
        const bound = { ...state.binding, ...c };
        const context = this.scopes.context(state, bound, domainReads, new Map());
        const domain = this.resolver.domainOf(plan.raw.foreach![v], [...at, 'foreach', v], context, new Set(Object.keys(bound)), `foreach variable "${v}" of stage "${plan.name}"`);
        for (const value of domain) next.push({ ...c, [v]: value });
      }
      combos = next;
    }
    state.domainReads.set(plan.name, domainReads);
    const list: Instance[] = [];
    for (const combo of combos) {
      const inst = this.expandInstance(plan, state, combo, at);
      if (inst) list.push(inst);
      else state.failed.add(plan.name);
    }
    state.instances.set(plan.name, list);
  }

  private expandInstance(plan: StagePlan, state: MemberState, foreach: Record<string, unknown>, at: string[]): Instance | undefined {
    const { raw, source, resolver, scopes } = this;
    if (++this.count > MAX_INSTANCES) {
      throw new UserError({
        message: `the pipeline expands to more than ${MAX_INSTANCES.toLocaleString('en-US')} stage instances (at stage "${plan.name}")`,
        location: raw.sweep ? source.locateKey([], 'sweep') : source.locateKey(['stages'], plan.name),
        hint: 'a sweep multiplies its variables\' values: narrow them, or run a part with --only VAR=VALUE',
      });
    }
    const report = resolver.report.bind(resolver);
    const st = plan.raw;
    const bound = { ...state.binding, ...foreach };
    const boundNames = new Set(Object.keys(bound));
    const reads = new Set<string>();
    const refs: Refs = new Map();
    const before = resolver.failures();

    // Outputs the user placed, then the stage type's defaults (which need the node id, so
    // commands see them as markers until the id is known).
    const explicitOuts: Record<string, string> = {};
    const placed = outputEntries(st);
    for (const [o, p, key] of placed) {
      if (p === null) continue; // the default path
      const n = resolver.normPath(resolver.resolve(p, [...at, key, o], scopes.context(state, bound, reads, new Map()), boundNames), [...at, key, o], `${key === 'metrics' ? 'metrics file' : 'output'} "${o}"`);
      if (n !== undefined) explicitOuts[o] = n;
    }
    // A metrics file is a file output whose numbers the node reports.
    const declared: Record<string, 'file' | 'dir'> = plan.type ? plan.type.outputs(st.with ?? {}) : Object.fromEntries(Object.keys(st.metrics ?? {}).map((o) => [o, 'file' as const]));
    const outNames = [...new Set([...placed.map(([o]) => o), ...Object.keys(declared)])];
    const outsView = Object.fromEntries(outNames.map((o) => [o, explicitOuts[o] ?? `${OUT_MARK}${o}\u0001`]));
    const context = scopes.context(state, bound, reads, refs, outsView);

    const command = st.cmd !== undefined ? resolver.resolve(st.cmd, [...at, 'cmd'], context, boundNames) : undefined;
    const withValue = (resolver.resolve(st.with ?? {}, [...at, 'with'], context, boundNames) ?? {}) as Record<string, unknown>;
    const env = Object.fromEntries(Object.entries((resolver.resolve(st.env ?? {}, [...at, 'env'], context, boundNames) ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
    const deps: string[] = [];
    // A set beside the list: one dep entry can resolve to the paths of 10,000 upstream outputs.
    const seenDeps = new Set<string>();
    const depLocs: SourceLocation[] = [];
    (st.deps ?? []).forEach((d, i) => {
      const resolved = resolver.resolve(d, [...at, 'deps', i], context, boundNames);
      for (const one of Array.isArray(resolved) ? resolved : [resolved]) {
        const n = resolver.normPath(one, [...at, 'deps', i], 'dependency', { read: true });
        if (n !== undefined && !seenDeps.has(n)) {
          seenDeps.add(n);
          deps.push(n);
          depLocs.push(plan.loc.deps[i]!);
        }
      }
    });
    // A NUL byte cannot be passed to a process: the command or the variable would be cut short.
    if (typeof command === 'string' && command.includes('\0')) report({ message: `the command of stage "${plan.name}" holds a NUL byte, which a command cannot pass`, location: source.locate([...at, 'cmd']) });
    if (typeof command === 'string' && Buffer.byteLength(command) >= MAX_COMMAND_BYTES) {
      report({
        message: `the command of stage "${plan.name}" is ${Buffer.byteLength(command).toLocaleString('en-US')} bytes once its expressions are evaluated; Linux starts no command longer than ${(MAX_COMMAND_BYTES - 1).toLocaleString('en-US')} bytes (one argument of /bin/sh -c)`,
        location: source.locate([...at, 'cmd']),
        hint: 'pass a long list through a file, a glob (out/finetune/*/f) or deps, not on the command line',
      });
    }
    for (const [k, v] of Object.entries(env)) {
      if (v.includes('\0') || k.includes('\0')) report({ message: `env ${JSON.stringify(k)} of stage "${plan.name}" holds a NUL byte, which an environment variable cannot`, location: source.locateKey([...at, 'env'], k) });
    }
    if (plan.type && resolver.failures() === before) {
      const invalid = validateResolved(plan.type.schema, withValue, source, [...at, 'with']);
      for (const d of invalid) report(d);
      // A type's own checks assume params its schema accepts (a merge's models are a list).
      if (invalid.length === 0 && resolver.failures() === before) {
        for (const message of plan.type.complete?.(withValue) ?? []) report({ message: `stage "${plan.name}": ${message}`, location: source.locate([...at, 'with']) });
      }
    }
    if (resolver.failures() > before) return undefined;

    // Identity: the variables read, directly or through the instances referred to.
    const vars: Record<string, unknown> = {};
    for (const v of [...reads].sort()) if (v in bound) vars[v] = bound[v];
    const id = nodeId(plan.name, vars);
    const outs: Record<string, string> = {};
    const outKinds: Record<string, 'file' | 'dir' | 'any'> = {};
    for (const o of outNames) {
      outs[o] = explicitOuts[o] ?? defaultOutPath(plan.name, vars, o);
      outKinds[o] = declared[o] ?? 'any';
    }
    const fill = (v: unknown): unknown =>
      typeof v === 'string'
        ? v.includes(OUT_MARK) ? v.replace(/\u0001dfwe-out:([^\u0001]*)\u0001/g, (_m, o: string) => outs[o] ?? '') : v
        : Array.isArray(v) ? v.map(fill) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)])) : v;

    // What a built-in stage reads through its parameters is a dep like any other.
    if (plan.type?.inputs) {
      for (const input of plan.type.inputs(fill(withValue) as Record<string, unknown>)) {
        const where = [...at, 'with', ...input.at];
        const n = resolver.normPath(input.path, where, `"${['with', ...input.at].map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('').slice(1)}"`, { read: true });
        if (n !== undefined && !seenDeps.has(n)) {
          seenDeps.add(n);
          deps.push(n);
          depLocs.push(this.locate(where));
        }
      }
      if (resolver.failures() > before) return undefined;
    }

    // Resources may come from params (`gpu: ${{ params.gpus }}`); they are not part of the key, so
    // what they read is not noted among the node's reads.
    const resources: Record<string, number> = {};
    for (const [r, v] of Object.entries(st.resources ?? {})) {
      const where = [...at, 'resources', r];
      const n = resolver.resolve(v, where, scopes.context(state, bound, new Set(), new Map()), boundNames);
      if (n === undefined) continue;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) report({ message: `resource "${r}" of stage "${plan.name}" must be a whole number ≥ 0, not ${JSON.stringify(n)}`, location: source.locate(where) });
      else resources[r] = n;
    }
    if (resolver.failures() > before) return undefined;
    const commands = command !== undefined ? [{ field: 'cmd', text: String(fill(command)) }] : (plan.type?.commands?.(fill(withValue) as Record<string, unknown>) ?? []);
    const params = raw.params ?? {};
    const node: NodeDef = {
      id,
      stage: plan.name,
      vars,
      members: 1,
      type: plan.type ? plan.type.name : 'cmd',
      version: plan.type ? plan.type.version : 1,
      command: command === undefined ? undefined : String(fill(command)),
      params: plan.type ? (fill(withValue) as Record<string, unknown>) : {},
      // The param entries its expressions read, not whole params: one instance's entry of a map is its own.
      pipelineParams: paramsAt(params, scopes.paramPaths(reads)),
      env: fill(env) as Record<string, string>,
      deps: deps.map((d) => String(fill(d))),
      outs,
      metricsFiles: Object.keys(st.metrics ?? {}),
      outKinds,
      resources,
      executorOptions: executorOptions(this.executors, raw, st),
      refs: [...new Set([...refs.keys()].map((r) => r.node.id))],
      refOuts: outputsRead(refs),
      mlRuntime: plan.type?.mlRuntime ?? false,
      commands,
      loc: { stage: plan.loc.stage, deps: depLocs, outs: { ...plan.loc.outs }, commands: commands.map((c) => this.locate(c.field === 'cmd' ? [...at, 'cmd'] : [...at, 'with', c.field])) },
    };
    for (const o of outNames) node.loc.outs[o] ??= node.loc.stage;
    return this.claim(node, foreach, plan, vars);
  }

  /**
   * The node an instance is: identical instances from different members are one node. What a
   * node holds is compared only when a second instance claims its id (most ids are claimed once).
   */
  private claim(node: NodeDef, foreach: Record<string, unknown>, plan: StagePlan, vars: Record<string, unknown>): Instance | undefined {
    const contentOf = (n: NodeDef): string => canonicalJson({ ...n, members: 0, loc: null });
    const existing = this.nodes.get(node.id);
    if (existing) {
      let known = this.contents.get(node.id);
      if (known === undefined) this.contents.set(node.id, (known = contentOf(existing)));
      if (known !== contentOf(node)) {
        this.resolver.report({ message: `stage "${plan.name}" gives two different nodes the id ${node.id}: a value it depends on is not among the variables it reads`, location: node.loc.stage });
        return undefined;
      }
      existing.members++;
      return { node: existing, foreach, identity: new Set(Object.keys(vars)) };
    }
    this.nodes.set(node.id, node);
    return { node, foreach, identity: new Set(Object.keys(vars)) };
  }
}

function outputsRead(refs: Refs): Record<string, string[]> {
  // Most instances read one instance: no map to build and sort.
  if (refs.size === 0) return {};
  if (refs.size === 1) {
    const [x, outs] = refs.entries().next().value as [Instance, Set<string>];
    return { [x.node.id]: [...outs].sort() };
  }
  const byNode = new Map<string, Set<string>>();
  for (const [x, outs] of refs) {
    const set = byNode.get(x.node.id) ?? byNode.set(x.node.id, new Set()).get(x.node.id)!;
    outs.forEach((o) => set.add(o));
  }
  return Object.fromEntries([...byNode].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, outs]) => [id, [...outs].sort()]));
}

/** Each executor's settings for a stage, as the executor merges the pipeline's and the stage's. */
function executorOptions(executors: ReadonlyMap<string, ExecutorKind> | undefined, raw: RawPipeline, st: RawStage): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const kind of executors?.values() ?? []) {
    if (!kind.mergeOptions) continue;
    out[kind.name] = kind.mergeOptions(raw[kind.name] as Record<string, unknown> | undefined, st[kind.name] as Record<string, unknown> | undefined);
  }
  return out;
}
