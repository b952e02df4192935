import { didYouMean, UserError, type Diagnostic, type SourceLocation } from '../diagnostics.js';
import { ExpressionAbort, ExpressionError, findExpressions, interpolate, referencedMembers, syntaxError } from './expressions.js';
import { canonicalValue } from './naming.js';
import { normalizeReadPath, normalizeWorkspacePath } from './paths.js';
import type { SourceFile } from './source.js';

/*
 * The expansion's errors and the evaluation of its expressions: every value of the pipeline is
 * resolved here, and every failure becomes one located diagnostic (a repeat of one already
 * reported, or one that follows from it, is counted but not said again).
 */

/** Names that expressions use for other things; a sweep or foreach variable cannot take them. */
const RESERVED = new Set(['params', 'stages', 'outs', 'true', 'false', 'null', 'in']);

/** Thrown when an expression reads a stage that failed to expand; never reported on its own. */
export class UpstreamFailed extends ExpressionAbort {}

export class Resolver {
  readonly diagnostics: Diagnostic[] = [];
  private readonly reported = new Set<string>();
  /** Failures not reported because they follow from one that was. */
  private suppressed = 0;

  constructor(
    private readonly source: SourceFile,
    private readonly stageNames: readonly string[],
    private readonly paramNames: readonly string[],
  ) {}

  report(d: Diagnostic): void {
    const k = `${d.location?.line}:${d.location?.col}:${d.message}`;
    if (!this.reported.has(k)) {
      this.reported.add(k);
      this.diagnostics.push(d);
    }
  }

  /** Failures so far, said or not: an instance is whole if this did not grow while it expanded. */
  failures(): number {
    return this.diagnostics.length + this.suppressed;
  }

  throwIfAny(): void {
    if (this.diagnostics.length > 0) throw new UserError(this.diagnostics);
  }

  /**
   * Every expression inside `value` (at data path `path`) evaluated against `context`, with
   * located errors reported; undefined when an expression failed.
   */
  resolve(value: unknown, path: (string | number)[], context: object, bound: ReadonlySet<string>): unknown {
    if (typeof value === 'string') {
      if (!value.includes('${{')) return value;
      try {
        for (const span of findExpressions(value)) {
          const unknown = this.unknownNames(value, span);
          if (unknown) throw unknown;
        }
        return interpolate(value, context);
      } catch (err) {
        // An expression that reads a stage which failed to expand: that failure is reported already.
        if (err instanceof UpstreamFailed) {
          this.suppressed++;
          return undefined;
        }
        if (!(err instanceof ExpressionError)) throw err;
        let message = err.message;
        const unknownVar = /^Unknown variable: (\w+)/.exec(message);
        if (unknownVar) {
          const guess = didYouMean(unknownVar[1]!, [...bound]);
          message = `unknown variable "${unknownVar[1]}"${guess ? `; did you mean "${guess}"?` : ''} (in scope: params, stages${bound.size ? `, ${[...bound].join(', ')}` : ''})`;
        }
        this.report({ message: `expression: ${message}`, location: locateInString(this.source, path, value, err.offset, err.length) });
        return undefined;
      }
    }
    if (Array.isArray(value)) return value.map((v, i) => this.resolve(v, [...path, i], context, bound));
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v, [...path, k], context, bound)]));
    }
    return value;
  }

  /**
   * A workspace-relative path, normalised; undefined (reported) if it is not one. A path that is
   * only read (`read`) may also name a place outside, which planning checks against `read_only`.
   */
  normPath(p: unknown, path: (string | number)[], what: string, opts: { read?: boolean } = {}): string | undefined {
    if (typeof p !== 'string') {
      if (p !== undefined) this.report({ message: `${what} must be a path string, not ${JSON.stringify(p)}`, location: this.source.locate(path) });
      return undefined;
    }
    if (p.includes('\0')) {
      this.report({ message: `${what} holds a NUL byte, which no path can`, location: this.source.locate(path) });
      return undefined;
    }
    const n = opts.read ? normalizeReadPath(p) : normalizeWorkspacePath(p);
    if (n === undefined) {
      this.report({
        message: `${what} "${p}" ${opts.read ? 'is the workspace itself' : 'is outside the workspace: paths are relative to the workspace and stay inside it'}`,
        location: this.source.locate(path),
      });
    }
    return n;
  }

  /**
   * Every expression's syntax in `value`, reported now: evaluation stops at a string's first
   * failure (or skips a stage whose upstream failed), so a later syntax error would wait for the
   * next run. Said as evaluation says it, so that an error seen twice is said once.
   */
  checkSyntax(value: unknown, path: (string | number)[]): void {
    if (typeof value === 'string') {
      if (!value.includes('${{')) return;
      try {
        for (const span of findExpressions(value)) {
          const err = syntaxError(span.expr, span.exprStart) ?? this.unknownNames(value, span);
          if (err) this.report({ message: `expression: ${err.message}`, location: locateInString(this.source, path, value, err.offset, err.length) });
        }
      } catch (err) {
        if (!(err instanceof ExpressionError)) throw err;
        this.report({ message: `expression: ${err.message}`, location: locateInString(this.source, path, value, err.offset, err.length) });
      }
    } else if (Array.isArray(value)) value.forEach((v, i) => this.checkSyntax(v, [...path, i]));
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) this.checkSyntax(v, [...path, k]);
  }

  /** The first stage or param an expression names that the pipeline does not have. */
  private unknownNames(value: string, span: { expr: string; exprStart: number }): ExpressionError | undefined {
    for (const [root, known, what] of [['stages', this.stageNames, 'stage'], ['params', this.paramNames, 'param']] as const) {
      for (const name of referencedMembers(span.expr, root)) {
        if (!known.includes(name)) {
          const guess = didYouMean(name, known);
          return new ExpressionError(`unknown ${what} "${name}"${guess ? `; did you mean "${guess}"?` : ''}`, value.indexOf(name, span.exprStart), name.length);
        }
      }
    }
    return undefined;
  }

  /** A sweep or foreach variable's values: a list, resolved if it is an expression. */
  domainOf(value: unknown, path: (string | number)[], context: object, bound: ReadonlySet<string>, what: string): unknown[] {
    const v = typeof value === 'string' ? this.resolve(value, path, context, bound) : value;
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.report({ message: `${what} must be a list (its values), not ${JSON.stringify(v)}`, location: this.source.locate(path) });
      return [];
    }
    return v.map(canonicalValue);
  }

  checkVarName(name: string, path: (string | number)[]): boolean {
    if (RESERVED.has(name)) {
      this.report({ message: `"${name}" cannot name a variable: expressions use it for something else`, location: this.source.locateKey(path, name) });
      return false;
    }
    return true;
  }
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
