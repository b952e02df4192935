import { didYouMean, UserError, type SourceLocation } from '../diagnostics.js';
import type { StageType } from '../stage-type.js';
import { findExpressions, hasExpression, referencedMembers } from './expressions.js';
import type { Resolver } from './resolver.js';
import type { SourceFile } from './source.js';
import type { RawPipeline, RawStage } from './types.js';

/*
 * The pipeline's stages, checked before any instance exists: what each is (a command or a stage
 * type), its foreach variables, the stages and params its expressions name, and an order in which
 * every stage comes after those it reads. These checks hold for every instance, so they are said
 * once per stage, not once per instance.
 */

export interface StagePlan {
  name: string;
  raw: RawStage;
  type?: StageType;
  foreachVars: string[];
  /** Stages named in this stage's expressions. */
  refs: string[];
  /** Where it is in the file (the same for every instance). */
  loc: { stage: SourceLocation; deps: SourceLocation[]; outs: Record<string, SourceLocation> };
}

export interface StagePlans {
  byName: Map<string, StagePlan>;
  /** Every stage after the stages it refers to. */
  order: StagePlan[];
}

/** The stages' plans, or a UserError with every static fault of the pipeline. */
export function planStages(raw: RawPipeline, source: SourceFile, registry: ReadonlyMap<string, StageType>, resolver: Resolver): StagePlans {
  const sweepVars = Object.keys(raw.sweep ?? {});
  const report = resolver.report.bind(resolver);
  const byName = new Map<string, StagePlan>();
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
      resolver.checkVarName(v, [...at, 'foreach']);
      if (sweepVars.includes(v)) report({ message: `foreach variable "${v}" of stage "${name}" hides the sweep variable of that name`, location: source.locateKey([...at, 'foreach'], v) });
    }
    for (const [o, p, key] of outputEntries(st)) {
      if (hasExpression(p) && exprsOf(p).some((e) => referencedMembers(e, 'stages').size > 0)) {
        report({ message: `${key} of stage "${name}" may use params and variables but not other stages' outputs`, location: source.locate([...at, key, o]) });
      }
      if (key === 'metrics' && st.outs && Object.hasOwn(st.outs, o)) {
        report({ message: `stage "${name}" names "${o}" both under outs and under metrics: a metrics file is an output already`, location: source.locateKey([...at, 'metrics'], o) });
      }
    }
    if (hasUses && st.metrics !== undefined) {
      report({ message: `stage "${name}": "metrics" declares a command's metrics files; a built-in stage (${st.uses}) reports its own`, location: source.locateKey(at, 'metrics') });
    }
    if (type) checkDeclaredOutputs(type, st, at, source, resolver);
    const refs = new Set<string>();
    for (const e of exprsOf([st.cmd, st.with, st.deps, st.env, st.foreach])) referencedMembers(e, 'stages').forEach((r) => refs.add(r));
    const loc = {
      stage: source.locateKey(['stages'], name),
      deps: (st.deps ?? []).map((_, i) => source.locate([...at, 'deps', i])),
      outs: Object.fromEntries(outputEntries(st).map(([o, , key]) => [o, source.locate([...at, key, o])])),
    };
    byName.set(name, { name, raw: st, type, foreachVars, refs: [...refs].filter((r) => r in raw.stages), loc });
  }
  for (const v of sweepVars) resolver.checkVarName(v, ['sweep']);
  checkOutputNames(byName, source, resolver);
  checkReportStages(raw, source, byName, resolver);
  resolver.throwIfAny();
  return { byName, order: orderStages(byName, source) };
}

/** The output names a stage has: placed under outs or metrics, and a built-in type's own. */
function outputNames(plan: StagePlan): string[] {
  let declared: Record<string, unknown> = {};
  try {
    declared = plan.type ? plan.type.outputs(plan.raw.with ?? {}) : {};
  } catch {
    declared = {};
  }
  return [...new Set([...outputEntries(plan.raw).map(([o]) => o), ...Object.keys(declared)])];
}

/** Every string of a value, with its data path. */
function* stringsAt(value: unknown, path: (string | number)[]): Generator<[(string | number)[], string]> {
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value)) for (let i = 0; i < value.length; i++) yield* stringsAt(value[i], [...path, i]);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) yield* stringsAt(v, [...path, k]);
}

/**
 * `stages.X.outs.NAME` naming an output X does not have: said for every such reference at once,
 * with a suggestion, before any expression is evaluated (evaluation stops at the first).
 */
function checkOutputNames(plans: ReadonlyMap<string, StagePlan>, source: SourceFile, resolver: Resolver): void {
  const names = new Map<string, string[]>();
  for (const plan of plans.values()) {
    const at = ['stages', plan.name];
    for (const key of ['cmd', 'with', 'deps', 'env'] as const) {
      for (const [path, text] of stringsAt(plan.raw[key], [...at, key])) {
        if (!text.includes('${{')) continue;
        for (const m of text.matchAll(/\bstages\.([A-Za-z_]\w*)\.outs\.([A-Za-z_]\w*)/g)) {
          const [, stage, out] = m as unknown as [string, string, string];
          const target = plans.get(stage);
          if (!target) continue; // an unknown stage is said where the expression is evaluated
          const known = names.get(stage) ?? names.set(stage, outputNames(target)).get(stage)!;
          if (known.includes(out)) continue;
          const guess = didYouMean(out, known);
          resolver.report({
            message: `stage "${stage}" has no output "${out}"${guess ? `; did you mean "${guess}"?` : ''}`,
            location: source.locate(path),
            hint: `its outputs: ${known.join(', ') || 'none'}`,
          });
        }
      }
    }
  }
}

/** Outputs placed under `outs` that the stage type does not have. */
function checkDeclaredOutputs(type: StageType, st: RawStage, at: string[], source: SourceFile, resolver: Resolver): void {
  let declared: Record<string, unknown> = {};
  try {
    declared = type.outputs(st.with ?? {});
  } catch {
    declared = {};
  }
  for (const o of Object.keys(st.outs ?? {})) {
    if (!(o in declared)) {
      const guess = didYouMean(o, Object.keys(declared));
      resolver.report({
        message: `stage type "${type.name}" has no output "${o}"${guess ? `; did you mean "${guess}"?` : ''}`,
        location: source.locateKey([...at, 'outs'], o),
        hint: `its outputs: ${Object.keys(declared).join(', ')}`,
      });
    }
  }
}

/** A stage's outputs as the file places them: under outs, and its metrics files under metrics. */
export function outputEntries(st: RawStage): [name: string, path: string | null, key: 'outs' | 'metrics'][] {
  const out: [string, string | null, 'outs' | 'metrics'][] = [];
  for (const key of ['outs', 'metrics'] as const) for (const [o, p] of Object.entries(st[key] ?? {})) out.push([o, p, key]);
  return out;
}

/** report.baseline and report.method name stages with metrics: evaluate, or one with metrics files. */
function checkReportStages(raw: RawPipeline, source: SourceFile, plans: Map<string, StagePlan>, resolver: Resolver): void {
  for (const role of ['baseline', 'method'] as const) {
    const name = raw.report?.[role];
    if (name === undefined) continue;
    const plan = plans.get(name);
    if (!plan) {
      const guess = didYouMean(name, Object.keys(raw.stages));
      resolver.report({ message: `report.${role} names stage "${name}", which the pipeline does not have${guess ? `; did you mean "${guess}"?` : ''}`, location: source.locate(['report', role]) });
    } else if (!plan.type?.reportsMetrics && plan.raw.metrics === undefined) {
      resolver.report({
        message: `report.${role} names stage "${name}", ${plan.type ? `a ${plan.type.name} stage` : 'a cmd stage'} without metrics: a report compares the metrics of evaluate stages and of stages that declare metrics files`,
        location: source.locate(['report', role]),
        hint: plan.type ? undefined : `declare the JSON file its command writes: metrics: { scores: out/${name}.json }`,
      });
    }
  }
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
