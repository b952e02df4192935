import { didYouMean, UserError, type Diagnostic } from '../diagnostics.js';
import type { StageType } from '../stage-type.js';
import { resetListBudget } from './expressions.js';
import { Instances } from './instances.js';
import { showValue } from './naming.js';
import { Resolver } from './resolver.js';
import { memberState, Scopes } from './scopes.js';
import type { SourceFile } from './source.js';
import { planStages } from './stage-plans.js';
import type { ExpandOptions, Expansion, RawPipeline } from './types.js';

/*
 * A pipeline file to its nodes. The layers, each its own module: the stages checked and ordered
 * (stage-plans.ts), the scope an expression sees (scopes.ts), each stage's instances in a sweep
 * member (instances.ts), expressions and errors (resolver.ts), names (naming.ts). This module
 * walks the sweep's members.
 */

export function expandPipeline(raw: RawPipeline, source: SourceFile, registry: ReadonlyMap<string, StageType>, opts: ExpandOptions = {}): Expansion {
  resetListBudget();
  const params = raw.params ?? {};
  const sweepVars = Object.keys(raw.sweep ?? {});
  const resolver = new Resolver(source, Object.keys(raw.stages), Object.keys(params));
  const plans = planStages(raw, source, registry, resolver);
  // Every syntax error now, said with whatever evaluation finds (it stops at a string's first failure).
  resolver.checkSyntax(raw.sweep, ['sweep']);
  for (const p of plans.order) for (const key of ['cmd', 'with', 'deps', 'env', 'outs', 'metrics', 'foreach'] as const) resolver.checkSyntax(p.raw[key], ['stages', p.name, key]);
  const scopes = new Scopes(plans.byName, params);
  const instances = new Instances(raw, source, resolver, scopes, opts.executors);
  let members = 0;

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
      members++;
      const state = memberState(binding);
      for (const plan of plans.order) instances.expandStage(plan, state);
      return;
    }
    const v = sweepVars[i]!;
    const bound = new Set(Object.keys(binding));
    const domain = resolver.domainOf(raw.sweep![v], ['sweep', v], scopes.context(memberState(binding), binding, new Set(), new Map()), bound, `sweep variable "${v}"`);
    if (domain.length === 0) emptyVar ??= v;
    for (const value of domain) {
      const shown = showValue(value);
      seen.get(v)!.add(shown);
      if (Object.hasOwn(only, v) && !only[v]!.includes(shown)) continue;
      assign(i + 1, { ...binding, [v]: value });
    }
  };
  assign(0, {});
  // read_only may name a param (`${{ params.data }}`), so a --param moves it with the data.
  const readOnly: string[] = [];
  (raw.read_only ?? []).forEach((d, i) => {
    const v = resolver.resolve(d, ['read_only', i], scopes.context(memberState({}), {}, new Set(), new Map()), new Set());
    if (v === undefined) return;
    if (typeof v === 'string' && v !== '') readOnly.push(v);
    else resolver.report({ message: `read_only entry ${i + 1} must be a directory's path, not ${JSON.stringify(v)}`, location: source.locate(['read_only', i]) });
  });
  resolver.throwIfAny();
  if (raw.sweep && members === 0) throw new UserError(noMembers(only, seen, emptyVar, source));
  return { nodes: [...instances.nodes.values()], members, instances: instances.count, readOnly };
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
