import { isCollection, isScalar, LineCounter, parseDocument, visit } from 'yaml';
import { UserError, type Diagnostic } from '../diagnostics.js';
import { SourceFile } from './source.js';

/** YAML alias expansion cap: refuses "billion laughs" documents. */
const MAX_ALIAS_COUNT = 1000;

export interface LoadedPipeline {
  source: SourceFile;
  data: unknown;
}

/** Deeper nesting than any pipeline needs; the YAML parser itself recurses and would overflow. */
export const MAX_DEPTH = 64;

/** Parse YAML keeping positions; every syntax problem of the file is reported at once. */
export function parsePipeline(text: string, displayPath: string): LoadedPipeline {
  const lineCounter = new LineCounter();
  const tooDeep = nestingBeyond(text, MAX_DEPTH);
  if (tooDeep !== undefined) {
    lineCounter.addNewLine(0);
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineCounter.addNewLine(i + 1);
    const { line, col } = lineCounter.linePos(tooDeep);
    const lineText = text.split(/\r?\n/)[line - 1] ?? '';
    throw new UserError({ message: `nested more than ${MAX_DEPTH} levels deep: a pipeline never needs that many`, location: { file: displayPath, line, col, lineText, length: 1 } });
  }
  let doc;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, keepSourceTokens: false });
  } catch (err) {
    if (err instanceof RangeError) throw new UserError({ message: `YAML: too deeply nested to parse`, location: { file: displayPath, line: 1, col: 1 } });
    throw err;
  }
  const source = new SourceFile(displayPath, text, lineCounter, doc);
  const diagnostics: Diagnostic[] = conflictMarkers(source);
  if (diagnostics.length === 0) {
    for (const err of doc.errors) {
      const message = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      const location = source.locAtOffset(err.pos[0], Math.max(1, err.pos[1] - err.pos[0]));
      // `${{ … }}` inside { } or [ ], or an expression holding ": ", is YAML syntax unless quoted.
      const hint = location.lineText?.includes('${{') ? 'quote a value that holds ${{ … }} inside { } or [ ] or contains ": ", e.g. k: "${{ a ? b : c }}"' : undefined;
      diagnostics.push({ message: `YAML: ${message}`, location, hint });
    }
  }
  // A key that is itself a list or map ({ a }: x) has no meaning here; yaml would only warn.
  visit(doc, {
    Pair(_key, pair) {
      if (isScalar(pair.key) && pair.key.value === '__proto__') {
        const range = pair.key.range;
        diagnostics.push({ message: '"__proto__" cannot be a key: JavaScript gives that name to an object\'s prototype, so its value would be lost', location: source.locAtOffset(range?.[0] ?? 0, 9) });
      }
      if (isCollection(pair.key)) {
        const range = (pair.key as { range?: [number, number, number] }).range;
        diagnostics.push({ message: 'a key must be a plain name, not a list or map', location: source.locAtOffset(range?.[0] ?? 0, Math.max(1, (range?.[1] ?? 1) - (range?.[0] ?? 0))) });
      }
    },
  });
  if (diagnostics.length > 0) throw new UserError(diagnostics);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    throw new UserError({ message: `YAML: ${(err as Error).message}`, location: source.locAtOffset(0) });
  }
  return { source, data };
}

/** Git merge-conflict markers parse as valid YAML scalars; catch them before they mislead. */
function conflictMarkers(source: SourceFile): Diagnostic[] {
  const found: Diagnostic[] = [];
  source.lines.forEach((line, i) => {
    if (/^(<{7}|={7}|>{7})( |$)/.test(line)) {
      found.push({
        message: 'merge-conflict marker: resolve the conflict before running',
        location: { file: source.path, line: i + 1, col: 1, lineText: line, length: 7 },
      });
    }
  });
  return found;
}

/**
 * The offset where the text first nests deeper than `max` (block indentation and flow brackets
 * together), or undefined. A cheap scan, before the parser, which recurses per level.
 */
export function nestingBeyond(text: string, max: number): number | undefined {
  const indents: number[] = [];
  let flow = 0;
  let offset = 0;
  for (const line of text.split('\n')) {
    const start = offset;
    offset += line.length + 1;
    const body = line.trimStart();
    if (body === '' || body.startsWith('#')) continue;
    if (flow === 0) {
      const indent = line.length - body.length;
      while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
      indents.push(indent);
      // `- - - x` nests a level per dash on one line.
      const dashes = /^(-\s+)+/.exec(body)?.[0].split('-').length ?? 1;
      if (indents.length + dashes - 1 > max) return start + line.length - body.length;
    }
    let quote: string | undefined;
    for (let i = line.length - body.length; i < line.length; i++) {
      const c = line[i]!;
      if (quote) {
        if (c === '\\' && quote === '"') i++;
        else if (c === quote) quote = undefined;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) break;
      else if (c === '[' || c === '{') {
        if (++flow + indents.length > max) return start + i;
      } else if ((c === ']' || c === '}') && flow > 0) flow--;
    }
  }
  return undefined;
}
