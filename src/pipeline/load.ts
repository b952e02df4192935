import { isCollection, LineCounter, parseDocument, visit } from 'yaml';
import { UserError, type Diagnostic } from '../diagnostics.js';
import { SourceFile } from './source.js';

/** YAML alias expansion cap: refuses "billion laughs" documents. */
const MAX_ALIAS_COUNT = 1000;

export interface LoadedPipeline {
  source: SourceFile;
  data: unknown;
}

/** Parse YAML keeping positions; every syntax problem of the file is reported at once. */
export function parsePipeline(text: string, displayPath: string): LoadedPipeline {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, keepSourceTokens: false });
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
