import { Environment, parse } from '@marcbachmann/cel-js';
import { shellQuote } from '../util/shell.js';

/*
 * `${{ … }}` holds a CEL expression (Common Expression Language), evaluated by a maintained
 * library, never by `eval`. A string that is exactly one expression takes the expression's value
 * (a list stays a list); otherwise each expression is rendered into the surrounding text.
 */

const PATTERN = /\$\{\{([\s\S]*?)\}\}/g;

export interface ExpressionSpan {
  /** Offset of `${{` in the string. */
  start: number;
  end: number;
  /** Offset of the CEL text in the string. */
  exprStart: number;
  expr: string;
}

export class ExpressionError extends Error {
  constructor(
    message: string,
    /** Offset within the string where the problem is. */
    readonly offset: number,
    readonly length = 1,
  ) {
    super(message);
  }
}

export function findExpressions(text: string): ExpressionSpan[] {
  const spans: ExpressionSpan[] = [];
  for (const m of text.matchAll(PATTERN)) {
    spans.push({ start: m.index, end: m.index + m[0].length, exprStart: m.index + 3, expr: m[1]! });
  }
  const unclosed = text.indexOf('${{', spans.length ? spans[spans.length - 1]!.end : 0);
  if (unclosed >= 0) throw new ExpressionError('unclosed "${{": expected "}}"', unclosed, 3);
  return spans;
}

export function hasExpression(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('${{');
  if (Array.isArray(value)) return value.some(hasExpression);
  if (value && typeof value === 'object') return Object.values(value).some(hasExpression);
  return false;
}

/** k-element subsets of a list, in the list's order (for sweeps over source-task sets). */
export function combinations<T>(xs: readonly T[], k: number): T[][] {
  const out: T[][] = [];
  const pick = (start: number, chosen: T[]): void => {
    if (chosen.length === k) {
      out.push(chosen);
      return;
    }
    for (let i = start; i <= xs.length - (k - chosen.length); i++) pick(i + 1, [...chosen, xs[i]!]);
  };
  if (k >= 0 && k <= xs.length) pick(0, []);
  return out;
}

/**
 * The most elements one function call may make, and all calls of one expansion together: a
 * pipeline that asks for more (`range(300000000)`, `combinations(range(40), 20)`) gets a located
 * error at once instead of running out of memory half a minute later.
 */
export const MAX_LIST = 1_000_000;
const MAX_TOTAL = 20_000_000;
let made = 0;

/** Start counting the elements functions make afresh (once per pipeline expansion). */
export function resetListBudget(): void {
  made = 0;
}

/** Count `n` values made by one call; `kind` says what they are, when not n plain elements ("998,991 lists of 2"). */
function budget(what: string, n: number, kind?: string): void {
  const count = (x: number): string => (Number.isFinite(x) ? x.toLocaleString('en-US') : `more than ${MAX_LIST.toLocaleString('en-US')}`);
  if (n > MAX_LIST) throw new Error(`${what} would make ${kind ? `${kind} (${count(n)} values)` : `${count(n)} elements`}; the limit is ${MAX_LIST.toLocaleString('en-US')} values`);
  made += n;
  if (made > MAX_TOTAL) throw new Error(`the pipeline's expressions make more than ${MAX_TOTAL.toLocaleString('en-US')} list elements in all`);
}

/** C(n, k), or Infinity once it passes the limit. */
function choose(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  let c = 1;
  for (let i = 1; i <= Math.min(k, n - k); i++) {
    c = (c * (n - i + 1)) / i;
    if (c > MAX_LIST) return Infinity;
  }
  return Math.round(c);
}

/** Functions that sweeps need beyond CEL's own map/filter/exists/all/size. */
export const FUNCTIONS = [
  { signature: 'combinations(list, int): list', description: 'all k-element subsets of a list, e.g. combinations(tasks, 3)' },
  { signature: 'sorted(list): list', description: 'the list sorted (strings and numbers)' },
  { signature: 'unique(list): list', description: 'the list without repeated elements, first occurrence kept' },
  { signature: 'range(int): list', description: '[0, 1, …, n-1]' },
  { signature: 'quote(string | list): string', description: "a value as one shell word (a list: one word per element), for cmd: `cat ${{ quote(n) }}` is safe whatever n holds" },
] as const;

let env: Environment | undefined;
function environment(): Environment {
  if (!env) {
    const sortKey = (x: unknown): string => (typeof x === 'bigint' || typeof x === 'number' ? String(x).padStart(24, '0') : String(x));
    env = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false })
      .registerFunction('combinations(list, int): list', (xs: unknown[], k: bigint) => {
        const n = choose(xs.length, Number(k));
        budget(`combinations(a list of ${xs.length}, ${k})`, n * Number(k), `${Number.isFinite(n) ? n.toLocaleString('en-US') : `more than ${MAX_LIST.toLocaleString('en-US')}`} lists of ${k}`);
        return combinations(xs, Number(k));
      })
      .registerFunction('sorted(list): list', (xs: unknown[]) => [...xs].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0)))
      .registerFunction('unique(list): list', (xs: unknown[]) => {
        const seen = new Set<string>();
        return xs.filter((x) => {
          const k = JSON.stringify(toPlain(x));
          return seen.has(k) ? false : (seen.add(k), true);
        });
      })
      .registerFunction('range(int): list', (n: bigint) => {
        budget(`range(${n})`, Math.max(0, Number(n)));
        return Array.from({ length: Number(n) }, (_, i) => BigInt(i));
      })
      .registerFunction('quote(string): string', (x: string) => shellQuote(x))
      .registerFunction('quote(list): string', (xs: unknown[]) => xs.map((x) => shellQuote(String(toPlain(x)))).join(' '));
  }
  return env;
}

const parsed = new Map<string, (ctx: unknown) => unknown>();
function compiled(expr: string): (ctx: unknown) => unknown {
  let f = parsed.get(expr);
  if (!f) {
    f = environment().parse(expr) as unknown as (ctx: unknown) => unknown;
    parsed.set(expr, f);
  }
  return f;
}

type AstNode = { op: string; args: unknown; pos?: number; start?: number; end?: number };

const referenced = new Map<string, ReadonlySet<string>>();

/**
 * Names under `root` that an expression reads, e.g. root "stages" in `stages.base.outs.x` → base.
 * Memoised: every instance of a stage asks the same of the same expressions.
 */
export function referencedMembers(expr: string, root: string): ReadonlySet<string> {
  const key = `${root}\0${expr}`;
  let found = referenced.get(key);
  if (!found) {
    found = parseMembers(expr, root);
    referenced.set(key, found);
  }
  return found;
}

function parseMembers(expr: string, root: string): Set<string> {
  const found = new Set<string>();
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (!n || typeof n !== 'object') return;
    const node = n as AstNode;
    if ((node.op === '.' || node.op === '[]') && Array.isArray(node.args)) {
      const [obj, member] = node.args as [AstNode, unknown];
      if (obj?.op === 'id' && obj.args === root) {
        const name = typeof member === 'string' ? member : (member as AstNode)?.op === 'value' ? String((member as AstNode).args) : undefined;
        if (name !== undefined) found.add(name);
      }
    }
    walk(node.args);
  };
  try {
    walk((parse(expr) as unknown as { ast: unknown }).ast);
  } catch {
    // syntax errors surface, located, when the expression is evaluated
  }
  return found;
}

/** Turn CEL values into plain JSON values: ints arrive as BigInt. */
export function toPlain(v: unknown): unknown {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`integer ${v} is too large`);
    return Number(v);
  }
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), toPlain(x)]));
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPlain(x)]));
  return v;
}

/**
 * Values handed to CEL: numbers that are whole become ints so `params.n + 1` works, and objects
 * become Maps, so a key named `constructor` or `toString` is a key (CEL tells a plain object by
 * its `constructor`).
 */
export function toCel(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(toCel);
  if (v && typeof v === 'object') return new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  return v;
}

/** An error an expression's context throws to stop evaluation, passed through as it is. */
export class ExpressionAbort extends Error {}

export function evaluateExpression(expr: string, context: object, exprOffset: number): unknown {
  try {
    return toPlain(compiled(expr)(context));
  } catch (err) {
    const abort = err instanceof ExpressionAbort ? err : (err as { cause?: unknown }).cause;
    if (abort instanceof ExpressionAbort) throw abort;
    throw located(err, expr, exprOffset);
  }
}

/** A CEL error as an ExpressionError at its place in the text (`exprOffset`: where the expression starts). */
function located(err: unknown, expr: string, exprOffset: number): ExpressionError {
  const e = err as Error & { node?: { pos?: number; start?: number; end?: number } };
  const lead = expr.length - expr.trimStart().length;
  const at = e.node?.start ?? e.node?.pos;
  const offset = exprOffset + (at !== undefined ? at : lead);
  const len = e.node?.end !== undefined && at !== undefined ? Math.max(1, e.node.end - at) : Math.max(1, expr.trim().length);
  return new ExpressionError(e.message.split('\n')[0]!, offset, len);
}

/** The syntax error of an expression, located as its evaluation would say it; undefined when it parses. */
export function syntaxError(expr: string, exprOffset: number): ExpressionError | undefined {
  try {
    compiled(expr);
    return undefined;
  } catch (err) {
    return located(err, expr, exprOffset);
  }
}

export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(render).join(' ');
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Resolve every expression in a string. Errors carry the offset within `text`. */
export function interpolate(text: string, context: object): unknown {
  const spans = findExpressions(text);
  if (spans.length === 0) return text;
  if (spans.length === 1 && spans[0]!.start === 0 && spans[0]!.end === text.length) {
    return evaluateExpression(spans[0]!.expr, context, spans[0]!.exprStart);
  }
  let out = '';
  let last = 0;
  for (const s of spans) {
    out += text.slice(last, s.start) + render(evaluateExpression(s.expr, context, s.exprStart));
    last = s.end;
  }
  return out + text.slice(last);
}
