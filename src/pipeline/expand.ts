import { didYouMean, UserError, type Diagnostic, type SourceLocation } from '../diagnostics.js';
import type { ExecutorKind } from '../execute/executor.js';
import type { StageType } from '../stage-type.js';
import { canonicalJson } from '../util/canonical.js';
import { ExpressionAbort, ExpressionError, findExpressions, resetListBudget, hasExpression, interpolate, referencedMembers, toCel } from './expressions.js';
import { normalizeWorkspacePath } from './paths.js';
import type { SourceFile } from './source.js';
import { validateResolved } from './validate.js';
import { canonicalValue, defaultOutPath, nodeId, showValue } from './naming.js';
import type { ExpandOptions, Expansion, NodeDef, RawPipeline, RawStage } from './types.js';

export const MAX_INSTANCES = 1_000_000;

/** Linux's limit on one argument (MAX_ARG_STRLEN, 32 pages, its NUL included): a command is one. */
const MAX_COMMAND_BYTES = 32 * 4096;


function outputsRead(refs: Refs): Record<string, string[]> {
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

/** Names that expressions use for other things; a sweep or foreach variable cannot take them. */
const RESERVED = new Set(['params', 'stages', 'outs', 'true', 'false', 'null', 'in']);

/** Where a string value sits in the file, so an error at an offset inside it can be located. */
function locateInString(source: SourceFile, path: (string | number)[], value: string, offset: number, length: number): SourceLocation {
  const { node } = source.nodeAt(path);
  const range = node?.range;
  if (!range) return source.locate(path);
  const raw = source.text.slice(range[0], range[1]);
  if (raw === value) return source.locAtOffset(range[0] + offset, length);
  // Quoted or block scalars: find the same occurrence of the text around the offset.
  const needle = value.slice(offset, offset + Math.max(3, Math.min(length, 40)));
  let ordinal = 0;
  for (let i = value.indexOf(needle); i >= 0 && i < offset; i = value.indexOf(needle, i + 1)) ordinal++;
  let at = -1;
  for (let k = 0; k <= ordinal; k++) at = raw.indexOf(needle, at + 1);
  return source.locAtOffset(range[0] + Math.max(0, at), length);
}

function exprsOf(v: unknown): string[] {
  if (typeof v === 'string') {
    try {
      return findExpressions(v).map((s) => s.expr);
    } catch {
      return [];
    }
  }
  if (Array.isArray(v)) return v.flatMap(exprsOf);
  if (v && typeof v === 'object') return Object.values(v).flatMap(exprsOf);
  return [];
}

interface StagePlan {
  name: string;
  raw: RawStage;
  type?: StageType;
  foreachVars: string[];
  /** Stages named in this stage's expressions. */
  refs: string[];
  /** Pipeline params its expressions read (the same for every instance). */
  usedParams: string[];
  /** Where it is in the file (the same for every instance). */
  loc: { stage: SourceLocation; deps: SourceLocation[]; outs: Record<string, SourceLocation> };
}

interface Instance {
  node: NodeDef;
  /** Its foreach variables' values. */
  foreach: Record<string, unknown>;
  /** The variables (of its member and foreach) its identity depends on. */
  identity: Set<string>;
}

/** Instances an expression referred to, with the outputs it read of each. */
type Refs = Map<Instance, Set<string>>;

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

/** Per member: the instances of each stage, and which variables each stage's foreach domain read. */
interface MemberState {
  binding: Record<string, unknown>;
  instances: Map<string, Instance[]>;
  domainReads: Map<string, Set<string>>;
  /** Stages with an instance that failed to expand in this member: reading them is no new error. */
  failed: Set<string>;
  /** Instances of a stage by the values of some of its foreach variables (see matchingInstances). */
  index: Map<string, Map<string, Instance[]>>;
}

/** Thrown when an expression reads a stage that failed to expand; never reported on its own. */
class UpstreamFailed extends ExpressionAbort {}

const OUT_MARK = '\u0001dfwe-out:';

export function expandPipeline(raw: RawPipeline, source: SourceFile, registry: ReadonlyMap<string, StageType>, opts: ExpandOptions = {}): Expansion {
  resetListBudget();
  const diagnostics: Diagnostic[] = [];
  const params = raw.params ?? {};
  const celParams = toCel(params);
  const stageNames = Object.keys(raw.stages);
  const sweepVars = Object.keys(raw.sweep ?? {});
  const reported = new Set<string>();
  /** Failures not reported because they follow from one that was. */
  let suppressed = 0;
  const report = (d: Diagnostic): void => {
    const k = `${d.location?.line}:${d.location?.col}:${d.message}`;
    if (!reported.has(k)) {
      reported.add(k);
      diagnostics.push(d);
    }
  };

  // Resolves every expression inside `value` (at data path `path`) against `context`, reporting
  // located errors; undefined when an expression failed.
  const resolve = (value: unknown, path: (string | number)[], context: object, bound: ReadonlySet<string>): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${{')) return value;
      try {
        for (const span of findExpressions(value)) {
          for (const [root, known, what] of [['stages', stageNames, 'stage'], ['params', Object.keys(params), 'param']] as const) {
            for (const name of referencedMembers(span.expr, root)) {
              if (!known.includes(name)) {
                const guess = didYouMean(name, known);
                throw new ExpressionError(`unknown ${what} "${name}"${guess ? `; did you mean "${guess}"?` : ''}`, value.indexOf(name, span.exprStart), name.length);
              }
            }
          }
        }
        return interpolate(value, context);
      } catch (err) {
        // An expression that reads a stage which failed to expand: that failure is reported already.
        if (err instanceof UpstreamFailed) {
          suppressed++;
          return undefined;
        }
        if (!(err instanceof ExpressionError)) throw err;
        let message = err.message;
        const unknownVar = /^Unknown variable: (\w+)/.exec(message);
        if (unknownVar) {
          const guess = didYouMean(unknownVar[1]!, [...bound]);
          message = `unknown variable "${unknownVar[1]}"${guess ? `; did you mean "${guess}"?` : ''} (in scope: params, stages${bound.size ? `, ${[...bound].join(', ')}` : ''})`;
        }
        report({ message: `expression: ${message}`, location: locateInString(source, path, value, err.offset, err.length) });
        return undefined;
      }
    }
    if (Array.isArray(value)) return value.map((v, i) => resolve(v, [...path, i], context, bound));
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, [...path, k], context, bound)]));
    }
    return value;
  };

  const normPath = (p: unknown, path: (string | number)[], what: string): string | undefined => {
    if (typeof p !== 'string') {
      if (p !== undefined) report({ message: `${what} must be a path string, not ${JSON.stringify(p)}`, location: source.locate(path) });
      return undefined;
    }
    if (p.includes('\0')) {
      report({ message: `${what} holds a NUL byte, which no path can`, location: source.locate(path) });
      return undefined;
    }
    const n = normalizeWorkspacePath(p);
    if (n === undefined) {
      report({ message: `${what} "${p}" is outside the workspace: paths are relative to the workspace and stay inside it`, location: source.locate(path) });
    }
    return n;
  };

  const checkVarName = (name: string, path: (string | number)[]): boolean => {
    if (RESERVED.has(name)) {
      report({ message: `"${name}" cannot name a variable: expressions use it for something else`, location: source.locateKey(path, name) });
      return false;
    }
    return true;
  };

  // The stages: type, foreach variables, and the stages each refers to.
  const plans = new Map<string, StagePlan>();
  for (const [name, st] of Object.entries(raw.stages)) {
    const at = ['stages', name];
    const hasCmd = st.cmd !== undefined;
    const hasUses = st.uses !== undefined;
    if (hasCmd === hasUses) {
      report({ message: `stage "${name}" needs exactly one of "cmd" (a shell command) or "uses" (a built-in stage type)`, location: source.locateKey(['stages'], name) });
      continue;
    }
    if (hasCmd && st.with !== undefined) {
      report({ message: `stage "${name}": "with" holds parameters of a built-in stage type ("uses"); a "cmd" stage puts values into its command`, location: source.locateKey(at, 'with') });
    }
    const type = hasUses ? registry.get(st.uses!) : undefined;
    if (hasUses && !type) {
      const guess = didYouMean(st.uses!, registry.keys());
      report({ message: `unknown stage type "${st.uses}"${guess ? `; did you mean "${guess}"?` : ''}`, location: source.locate([...at, 'uses']) });
      continue;
    }
    const foreachVars = Object.keys(st.foreach ?? {});
    for (const v of foreachVars) {
      checkVarName(v, [...at, 'foreach']);
      if (sweepVars.includes(v)) report({ message: `foreach variable "${v}" of stage "${name}" hides the sweep variable of that name`, location: source.locateKey([...at, 'foreach'], v) });
    }
    for (const [o, p] of Object.entries(st.outs ?? {})) {
      if (hasExpression(p) && exprsOf(p).some((e) => referencedMembers(e, 'stages').size > 0)) {
        report({ message: `outs of stage "${name}" may use params and variables but not other stages' outputs`, location: source.locate([...at, 'outs', o]) });
      }
    }
    if (type) {
      let declared: Record<string, unknown> = {};
      try {
        declared = type.outputs(st.with ?? {});
      } catch {
        declared = {};
      }
      for (const o of Object.keys(st.outs ?? {})) {
        if (!(o in declared)) {
          const guess = didYouMean(o, Object.keys(declared));
          report({
            message: `stage type "${type.name}" has no output "${o}"${guess ? `; did you mean "${guess}"?` : ''}`,
            location: source.locateKey([...at, 'outs'], o),
            hint: `its outputs: ${Object.keys(declared).join(', ')}`,
          });
        }
      }
    }
    const refs = new Set<string>();
    for (const e of exprsOf([st.cmd, st.with, st.deps, st.env, st.foreach])) referencedMembers(e, 'stages').forEach((r) => refs.add(r));
    const usedParams = new Set<string>();
    for (const e of exprsOf([st.cmd, st.with, st.deps, st.env, st.outs, st.foreach])) referencedMembers(e, 'params').forEach((p) => usedParams.add(p));
    const loc = {
      stage: source.locateKey(['stages'], name),
      deps: (st.deps ?? []).map((_, i) => source.locate([...at, 'deps', i])),
      outs: Object.fromEntries(Object.keys(st.outs ?? {}).map((o) => [o, source.locate([...at, 'outs', o])])),
    };
    plans.set(name, { name, raw: st, type, foreachVars, refs: [...refs].filter((r) => r in raw.stages), usedParams: [...usedParams].filter((p) => p in params).sort(), loc });
  }
  for (const v of sweepVars) checkVarName(v, ['sweep']);
  for (const role of ['baseline', 'method'] as const) {
    const name = raw.report?.[role];
    if (name === undefined) continue;
    const plan = plans.get(name);
    if (!plan) {
      const guess = didYouMean(name, stageNames);
      report({ message: `report.${role} names stage "${name}", which the pipeline does not have${guess ? `; did you mean "${guess}"?` : ''}`, location: source.locate(['report', role]) });
    } else if (plan.type?.name !== 'evaluate') {
      report({ message: `report.${role} names stage "${name}", ${plan.type ? `a ${plan.type.name} stage` : 'a cmd stage'}: a report compares the metrics of evaluate stages`, location: source.locate(['report', role]) });
    }
  }
  if (diagnostics.length > 0) throw new UserError(diagnostics);

  // Stages in an order where every stage comes after those it refers to.
  const stageOrder = orderStages(plans, source);

  const nodes = new Map<string, NodeDef>();
  const contents = new Map<string, string>();
  let instances = 0;
  let members = 0;

  const expandMember = (binding: Record<string, unknown>): void => {
    members++;
    const state: MemberState = { binding, instances: new Map(), domainReads: new Map(), failed: new Set(), index: new Map() };
    for (const plan of stageOrder) expandStage(plan, state);
  };

  // A context whose reads are recorded: the variables an instance depends on are those its
  // expressions actually read, so `size(tasks) > 1 ? target : tasks[0]` needs `target` only
  // for multi-task sets.
  const makeContext = (state: MemberState, bound: Record<string, unknown>, reads: Set<string>, refs: Refs, outs?: Record<string, string>): object => {
    const celBound = new Map(Object.entries(bound).map(([k, v]) => [k, toCel(v)]));
    const stages = new Proxy(
      {},
      {
        get: (_t, key) => {
          if (typeof key !== 'string' || !plans.has(key)) return undefined;
          return stageView(key, state, bound, reads, refs);
        },
        has: (_t, key) => typeof key === 'string' && plans.has(key),
        // cel-js checks own properties before reading a map key
        getOwnPropertyDescriptor: (_t, key) =>
          typeof key === 'string' && plans.has(key) ? { enumerable: true, configurable: true, value: stageView(key, state, bound, reads, refs) } : undefined,
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
  };

  // `stages.X` seen from an instance: the instances of X that agree with it on shared foreach
  // variables. One instance gives its outputs; several (X fans out over a variable the reader
  // does not bind) give, for each output, the list of paths in X's foreach order.
  const stageView = (name: string, state: MemberState, bound: Record<string, unknown>, reads: Set<string>, refs: Refs): unknown => {
    if (state.failed.has(name)) throw new UpstreamFailed(name);
    const plan = plans.get(name)!;
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
  };

  // The instances of stage `name` that agree with `bound` on the foreach variables `shared`:
  // looked up in an index by those variables' values, built once per member and set of variables,
  // so a reference costs the same whether the stage has ten instances or a hundred thousand.
  const matchingInstances = (name: string, state: MemberState, shared: string[], bound: Record<string, unknown>): Instance[] => {
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
  };

  const expandStage = (plan: StagePlan, state: MemberState): void => {
    const at = ['stages', plan.name];
    // The foreach domains, in order; each may read the member's and earlier foreach variables.
    let combos: Record<string, unknown>[] = [{}];
    const domainReads = new Set<string>();
    for (const v of plan.foreachVars) {
      const next: Record<string, unknown>[] = [];
      for (const c of combos) {
        const bound = { ...state.binding, ...c };
        const domain = domainOf(plan.raw.foreach![v], [...at, 'foreach', v], makeContext(state, bound, domainReads, new Map()), new Set(Object.keys(bound)), `foreach variable "${v}" of stage "${plan.name}"`);
        for (const value of domain) next.push({ ...c, [v]: value });
      }
      combos = next;
    }
    state.domainReads.set(plan.name, domainReads);
    const list: Instance[] = [];
    for (const combo of combos) {
      const inst = expandInstance(plan, state, combo, at);
      if (inst) list.push(inst);
      else state.failed.add(plan.name);
    }
    state.instances.set(plan.name, list);
  };

  const expandInstance = (plan: StagePlan, state: MemberState, foreach: Record<string, unknown>, at: string[]): Instance | undefined => {
    if (++instances > MAX_INSTANCES) {
      throw new UserError({
        message: `the pipeline expands to more than ${MAX_INSTANCES.toLocaleString('en-US')} stage instances (at stage "${plan.name}")`,
        location: raw.sweep ? source.locateKey([], 'sweep') : source.locateKey(['stages'], plan.name),
        hint: 'a sweep multiplies its variables\' values: narrow them, or run a part with --only VAR=VALUE',
      });
    }
    const st = plan.raw;
    const bound = { ...state.binding, ...foreach };
    const boundNames = new Set(Object.keys(bound));
    const reads = new Set<string>();
    const refs: Refs = new Map();
    const before = diagnostics.length + suppressed;

    // Outputs the user placed, then the stage type's defaults (which need the node id, so
    // commands see them as markers until the id is known).
    const explicitOuts: Record<string, string> = {};
    for (const [o, p] of Object.entries(st.outs ?? {})) {
      if (p === null) continue; // the default path
      const n = normPath(resolve(p, [...at, 'outs', o], makeContext(state, bound, reads, new Map()), boundNames), [...at, 'outs', o], `output "${o}"`);
      if (n !== undefined) explicitOuts[o] = n;
    }
    const declared: Record<string, 'file' | 'dir'> = plan.type ? plan.type.outputs(st.with ?? {}) : {};
    const outNames = [...new Set([...Object.keys(st.outs ?? {}), ...Object.keys(declared)])];
    const outsView = Object.fromEntries(outNames.map((o) => [o, explicitOuts[o] ?? `${OUT_MARK}${o}\u0001`]));
    const context = makeContext(state, bound, reads, refs, outsView);

    const command = st.cmd !== undefined ? resolve(st.cmd, [...at, 'cmd'], context, boundNames) : undefined;
    const withValue = (resolve(st.with ?? {}, [...at, 'with'], context, boundNames) ?? {}) as Record<string, unknown>;
    const env = Object.fromEntries(Object.entries((resolve(st.env ?? {}, [...at, 'env'], context, boundNames) ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
    const deps: string[] = [];
    // A set beside the list: one dep entry can resolve to the paths of 10,000 upstream outputs.
    const seenDeps = new Set<string>();
    const depLocs: SourceLocation[] = [];
    (st.deps ?? []).forEach((d, i) => {
      const resolved = resolve(d, [...at, 'deps', i], context, boundNames);
      for (const one of Array.isArray(resolved) ? resolved : [resolved]) {
        const n = normPath(one, [...at, 'deps', i], 'dependency');
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
    if (plan.type && diagnostics.length + suppressed === before) {
      for (const d of validateResolved(plan.type.schema, withValue, source, [...at, 'with'])) report(d);
      if (diagnostics.length + suppressed === before) {
        for (const message of plan.type.complete?.(withValue) ?? []) report({ message: `stage "${plan.name}": ${message}`, location: source.locate([...at, 'with']) });
      }
    }
    if (diagnostics.length + suppressed > before) return undefined;

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

    const node: NodeDef = {
      id,
      stage: plan.name,
      vars,
      members: 1,
      type: plan.type ? plan.type.name : 'cmd',
      version: plan.type ? plan.type.version : 1,
      command: command === undefined ? undefined : String(fill(command)),
      params: plan.type ? (fill(withValue) as Record<string, unknown>) : {},
      pipelineParams: Object.fromEntries(plan.usedParams.map((p) => [p, params[p]])),
      env: fill(env) as Record<string, string>,
      deps: deps.map((d) => String(fill(d))),
      inputs: plan.type?.inputs ? plan.type.inputs(fill(withValue) as Record<string, unknown>) : [],
      outs,
      outKinds,
      resources: st.resources ?? {},
      executorOptions: executorOptions(opts.executors, raw, st),
      refs: [...new Set([...refs.keys()].map((r) => r.node.id))],
      refOuts: outputsRead(refs),
      mlRuntime: plan.type?.mlRuntime ?? false,
      loc: { stage: plan.loc.stage, deps: depLocs, outs: { ...plan.loc.outs } },
    };
    for (const o of outNames) node.loc.outs[o] ??= node.loc.stage;

    // Identical instances from different members are one node. What a node holds is compared
    // only when a second instance claims its id (most ids are claimed once).
    const contentOf = (n: NodeDef): string => canonicalJson({ ...n, members: 0, loc: null });
    const existing = nodes.get(id);
    if (existing) {
      let known = contents.get(id);
      if (known === undefined) contents.set(id, (known = contentOf(existing)));
      if (known !== contentOf(node)) {
        report({ message: `stage "${plan.name}" gives two different nodes the id ${id}: a value it depends on is not among the variables it reads`, location: node.loc.stage });
        return undefined;
      }
      existing.members++;
      return { node: existing, foreach, identity: new Set(Object.keys(vars)) };
    }
    nodes.set(id, node);
    return { node, foreach, identity: new Set(Object.keys(vars)) };
  };

  const domainOf = (value: unknown, path: (string | number)[], context: object, bound: ReadonlySet<string>, what: string): unknown[] => {
    const v = typeof value === 'string' ? resolve(value, path, context, bound) : value;
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      report({ message: `${what} must be a list (its values), not ${JSON.stringify(v)}`, location: source.locate(path) });
      return [];
    }
    return v.map(canonicalValue);
  };

  // Sweep members: every assignment of the sweep variables, in order; a variable's values may
  // depend on earlier ones (`sources: ${{ combinations(…, 3) }}` after `target`).
  const only = opts.only ?? {};
  for (const k of Object.keys(only)) {
    if (!sweepVars.includes(k)) {
      const guess = didYouMean(k, sweepVars);
      throw new UserError(`--only ${k}=…: "${k}" is not a sweep variable${guess ? `; did you mean "${guess}"?` : ''}${sweepVars.length ? ` (sweep variables: ${sweepVars.join(', ')})` : ' (this pipeline has no sweep)'}`);
    }
  }
  /** Every value each sweep variable took, as --only spells it, to say which --only matched nothing. */
  const seen = new Map<string, Set<string>>(sweepVars.map((v) => [v, new Set()]));
  let emptyVar: string | undefined;
  const assign = (i: number, binding: Record<string, unknown>): void => {
    if (i === sweepVars.length) {
      expandMember(binding);
      return;
    }
    const v = sweepVars[i]!;
    const bound = new Set(Object.keys(binding));
    const domain = domainOf(raw.sweep![v], ['sweep', v], makeContext({ binding, instances: new Map(), domainReads: new Map(), failed: new Set(), index: new Map() }, binding, new Set(), new Map()), bound, `sweep variable "${v}"`);
    if (domain.length === 0) emptyVar ??= v;
    for (const value of domain) {
      const shown = showValue(value);
      seen.get(v)!.add(shown);
      if (v in only && !only[v]!.includes(shown)) continue;
      assign(i + 1, { ...binding, [v]: value });
    }
  };
  assign(0, {});
  if (diagnostics.length > 0) throw new UserError(diagnostics);
  if (raw.sweep && members === 0) throw new UserError(noMembers(only, seen, emptyVar, source));
  return { nodes: [...nodes.values()], members, instances };
}

/** Why a sweep has no member: an --only value no member has (with did-you-mean), or a variable without values. */
function noMembers(only: Record<string, string[]>, seen: Map<string, Set<string>>, emptyVar: string | undefined, source: SourceFile): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [k, values] of Object.entries(only)) {
    const known = [...(seen.get(k) ?? [])];
    for (const v of values) {
      if (known.includes(v)) continue;
      const guess = didYouMean(v, known);
      out.push({ message: `--only ${k}=${v}: no sweep member has ${k}=${v}${guess ? `; did you mean "${guess}"?` : ''}`, hint: known.length ? `its values: ${known.slice(0, 12).join(', ')}${known.length > 12 ? ', …' : ''}` : undefined });
    }
  }
  if (out.length) return out;
  if (Object.keys(only).length) return [{ message: `no sweep member has all of ${Object.entries(only).map(([k, v]) => `${k}=${v.join('|')}`).join(' and ')}` }];
  return [{
    message: emptyVar ? `sweep variable "${emptyVar}" has no values, so the sweep has no members and nothing would run` : 'the sweep has no members, so nothing would run',
    location: emptyVar ? source.locateKey(['sweep'], emptyVar) : source.locateKey([], 'sweep'),
  }];
}

/** Stages after the stages they refer to; a cycle is an error that spells it out. */
function orderStages(plans: Map<string, StagePlan>, source: SourceFile): StagePlan[] {
  const order: StagePlan[] = [];
  const state = new Map<string, 1 | 2>();
  for (const start of plans.keys()) {
    if (state.has(start)) continue;
    const path: string[] = [start];
    const next: number[] = [0];
    state.set(start, 1);
    while (path.length > 0) {
      const name = path[path.length - 1]!;
      const refs = plans.get(name)!.refs.filter((r) => plans.has(r));
      const i = next[next.length - 1]!;
      if (i >= refs.length) {
        state.set(name, 2);
        order.push(plans.get(name)!);
        path.pop();
        next.pop();
        continue;
      }
      next[next.length - 1] = i + 1;
      const r = refs[i]!;
      if (state.get(r) === 1) {
        const cycle = [...path.slice(path.indexOf(r)), r].reverse();
        throw new UserError({
          message: cycle.length === 2 ? `stage "${r}" depends on itself` : `dependency cycle: ${cycle.join(' → ')}`,
          location: source.locateKey(['stages'], cycle[0]!),
          hint: "a stage reads another stage's output through ${{ stages.NAME.outs.OUT }} or a dep path; remove one link of the cycle",
        });
      }
      if (!state.has(r)) {
        state.set(r, 1);
        path.push(r);
        next.push(0);
      }
    }
  }
  return order;
}
