import { didYouMean, UserError, type Diagnostic, type SourceLocation } from '../diagnostics.js';
import type { StageType } from '../stage-type.js';
import { ExpressionError, hasExpression, interpolate, referencedMembers, toCel, findExpressions } from './expressions.js';
import { normalizeWorkspacePath } from './paths.js';
import type { SourceFile } from './source.js';

/** One node of the graph, fully resolved: no expressions left, paths normalised. */
export interface NodeDef {
  id: string;
  /** The stage name in the pipeline file. */
  stage: string;
  /** 'cmd' for shell commands, else the built-in stage type. */
  type: string;
  version: number;
  command?: string;
  params: Record<string, unknown>;
  /** Values of the pipeline `params` this stage reads (only those), so `why` can name them. */
  uses: Record<string, unknown>;
  env: Record<string, string>;
  deps: string[];
  outs: Record<string, string>;
  outKinds: Record<string, 'file' | 'dir' | 'any'>;
  resources: Record<string, number>;
  /** Upstream node ids named in expressions. */
  refs: string[];
  mlRuntime: boolean;
  loc: { stage: SourceLocation; deps: SourceLocation[]; outs: Record<string, SourceLocation> };
}

interface RawStage {
  cmd?: string;
  uses?: string;
  with?: Record<string, unknown>;
  deps?: string[];
  outs?: Record<string, string>;
  env?: Record<string, string | number | boolean>;
  resources?: Record<string, number>;
}

export interface RawPipeline {
  version: 1;
  name?: string;
  params?: Record<string, unknown>;
  stages: Record<string, RawStage>;
}

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

export function expandPipeline(raw: RawPipeline, source: SourceFile, registry: ReadonlyMap<string, StageType>): NodeDef[] {
  const diagnostics: Diagnostic[] = [];
  const params = raw.params ?? {};
  const stageNames = Object.keys(raw.stages);
  const celParams = toCel(params);

  // Resolves every expression inside `value` (at data path `path`), collecting located errors.
  const resolve = (value: unknown, path: (string | number)[], context: Record<string, unknown>): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('${{')) return value;
      try {
        for (const span of findExpressions(value)) {
          for (const name of referencedMembers(span.expr, 'stages')) {
            if (!(name in raw.stages)) {
              const guess = didYouMean(name, stageNames);
              const at = value.indexOf(name, span.exprStart);
              throw new ExpressionError(`unknown stage "${name}"${guess ? `; did you mean "${guess}"?` : ''}`, at, name.length);
            }
          }
          for (const name of referencedMembers(span.expr, 'params')) {
            if (!(name in params)) {
              const guess = didYouMean(name, Object.keys(params));
              const at = value.indexOf(name, span.exprStart);
              throw new ExpressionError(`unknown param "${name}"${guess ? `; did you mean "${guess}"?` : ''}`, at, name.length);
            }
          }
        }
        return interpolate(value, context);
      } catch (err) {
        if (!(err instanceof ExpressionError)) throw err;
        diagnostics.push({ message: `expression: ${err.message}`, location: locateInString(source, path, value, err.offset, err.length) });
        return value;
      }
    }
    if (Array.isArray(value)) return value.map((v, i) => resolve(v, [...path, i], context));
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, [...path, k], context)]));
    }
    return value;
  };

  const normPath = (p: unknown, path: (string | number)[], what: string): string | undefined => {
    if (typeof p !== 'string') {
      diagnostics.push({ message: `${what} must be a path string, not ${JSON.stringify(p)}`, location: source.locate(path) });
      return undefined;
    }
    const n = normalizeWorkspacePath(p);
    if (n === undefined) {
      diagnostics.push({ message: `${what} "${p}" is outside the workspace: paths are relative to the workspace and stay inside it`, location: source.locate(path) });
    }
    return n;
  };

  // Pass 1: each stage's type, outputs and their paths (outs may use params, never other stages).
  const stageTypes = new Map<string, StageType | undefined>();
  const outsByStage = new Map<string, Record<string, string>>();
  const outKindsByStage = new Map<string, Record<string, 'file' | 'dir' | 'any'>>();
  for (const [name, st] of Object.entries(raw.stages)) {
    const at = ['stages', name];
    const hasCmd = st.cmd !== undefined;
    const hasUses = st.uses !== undefined;
    if (hasCmd === hasUses) {
      diagnostics.push({ message: `stage "${name}" needs exactly one of "cmd" (a shell command) or "uses" (a built-in stage type)`, location: source.locateKey(['stages'], name) });
      continue;
    }
    if (hasCmd && st.with !== undefined) {
      diagnostics.push({ message: `stage "${name}": "with" holds parameters of a built-in stage type ("uses"); a "cmd" stage puts values into its command`, location: source.locateKey(at, 'with') });
    }
    const type = hasUses ? registry.get(st.uses!) : undefined;
    if (hasUses && !type) {
      const guess = didYouMean(st.uses!, registry.keys());
      diagnostics.push({ message: `unknown stage type "${st.uses}"${guess ? `; did you mean "${guess}"?` : ''}`, location: source.locate([...at, 'uses']) });
      continue;
    }
    stageTypes.set(name, type);
    const outs: Record<string, string> = {};
    const kinds: Record<string, 'file' | 'dir' | 'any'> = {};
    const outsContext = { params: celParams };
    for (const [o, p] of Object.entries(st.outs ?? {})) {
      if (hasExpression(p) && findExpressionsSafe(String(p)).some((e) => referencedMembers(e, 'stages').size > 0)) {
        diagnostics.push({ message: `outs of stage "${name}" may use params but not other stages' outputs`, location: source.locate([...at, 'outs', o]) });
        continue;
      }
      const n = normPath(resolve(p, [...at, 'outs', o], outsContext), [...at, 'outs', o], `output "${o}"`);
      if (n !== undefined) outs[o] = n;
      kinds[o] = 'any';
    }
    if (type) {
      let declared: Record<string, 'file' | 'dir'> = {};
      const withValue = st.with ?? {};
      try {
        declared = type.outputs(withValue);
      } catch {
        declared = {};
      }
      for (const o of Object.keys(outs)) {
        if (!(o in declared)) {
          const guess = didYouMean(o, Object.keys(declared));
          diagnostics.push({
            message: `stage type "${type.name}" has no output "${o}"${guess ? `; did you mean "${guess}"?` : ''}`,
            location: source.locateKey([...at, 'outs'], o),
            hint: `its outputs: ${Object.keys(declared).join(', ')}`,
          });
        }
      }
      for (const [o, kind] of Object.entries(declared)) {
        outs[o] ??= `out/${name}/${o}`;
        kinds[o] = kind;
      }
    } else if (hasCmd && Object.keys(outs).length === 0 && st.outs === undefined) {
      // A command with no outputs is allowed (e.g. a check); it reruns only when its inputs change.
    }
    outsByStage.set(name, outs);
    outKindsByStage.set(name, kinds);
  }

  const context = {
    params: celParams,
    stages: Object.fromEntries([...outsByStage].map(([n, outs]) => [n, { outs }])),
  };

  // Pass 2: everything else, with upstream outputs in scope.
  const nodes: NodeDef[] = [];
  for (const [name, st] of Object.entries(raw.stages)) {
    if (!stageTypes.has(name)) continue;
    const at = ['stages', name];
    const type = stageTypes.get(name);
    const refs = new Set<string>();
    const usedParams = new Set<string>();
    const collectRefs = (v: unknown): void => {
      if (typeof v === 'string') {
        for (const e of findExpressionsSafe(v)) {
          referencedMembers(e, 'stages').forEach((r) => refs.add(r));
          referencedMembers(e, 'params').forEach((r) => usedParams.add(r));
        }
      }
      else if (Array.isArray(v)) v.forEach(collectRefs);
      else if (v && typeof v === 'object') Object.values(v).forEach(collectRefs);
    };
    collectRefs([st.cmd, st.with, st.deps, st.env, st.outs]);

    const command = st.cmd !== undefined ? resolve(st.cmd, [...at, 'cmd'], context) : undefined;
    const withValue = (resolve(st.with ?? {}, [...at, 'with'], context) ?? {}) as Record<string, unknown>;
    const env = Object.fromEntries(
      Object.entries((resolve(st.env ?? {}, [...at, 'env'], context) ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
    );
    const deps: string[] = [];
    const depLocs: SourceLocation[] = [];
    (st.deps ?? []).forEach((d, i) => {
      const resolved = resolve(d, [...at, 'deps', i], context);
      for (const one of Array.isArray(resolved) ? resolved : [resolved]) {
        const n = normPath(one, [...at, 'deps', i], 'dependency');
        if (n !== undefined && !deps.includes(n)) {
          deps.push(n);
          depLocs.push(source.locate([...at, 'deps', i]));
        }
      }
    });
    const outLocs = Object.fromEntries(Object.keys(outsByStage.get(name)!).map((o) => [o, source.locate([...at, 'outs', o])]));
    nodes.push({
      id: name,
      stage: name,
      type: type ? type.name : 'cmd',
      version: type ? type.version : 1,
      command: typeof command === 'string' ? command : command === undefined ? undefined : String(command),
      params: type ? withValue : {},
      uses: Object.fromEntries([...usedParams].filter((p) => p in params).sort().map((p) => [p, params[p]])),
      env,
      deps,
      outs: outsByStage.get(name)!,
      outKinds: outKindsByStage.get(name)!,
      resources: st.resources ?? {},
      refs: [...refs].filter((r) => r in raw.stages),
      mlRuntime: type?.mlRuntime ?? false,
      loc: { stage: source.locateKey(['stages'], name), deps: depLocs, outs: outLocs },
    });
  }
  if (diagnostics.length > 0) throw new UserError(diagnostics);
  return nodes;
}

function findExpressionsSafe(v: string): string[] {
  try {
    return findExpressions(v).map((s) => s.expr);
  } catch {
    return [];
  }
}
