// Errors are data: a user mistake becomes one or more Diagnostics with a location, printed
// with the offending source line and a caret. Stack traces are for bugs in dfwe only.

export interface SourceLocation {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
  /** The whole source line, for the snippet. */
  lineText?: string;
  /** How many characters the caret underlines. */
  length?: number;
  /** The data path it was found at (and whether at its key): a memoised expansion finds it again in a file edited around it. */
  at?: { path: (string | number)[]; key?: true };
}

export interface Diagnostic {
  message: string;
  /** A warning is said and the command goes on; the default is an error. */
  severity?: 'error' | 'warning';
  location?: SourceLocation;
  hint?: string;
}

/** Exit code for bad input (pipeline, CLI usage): nothing was run or written. */
export const EXIT_BAD_INPUT = 2;
/** Exit code when a stage failed. */
export const EXIT_FAILED = 1;

export class UserError extends Error {
  readonly diagnostics: Diagnostic[];
  readonly exitCode: number;
  constructor(diagnostics: Diagnostic[] | Diagnostic | string, exitCode = EXIT_BAD_INPUT) {
    const given = typeof diagnostics === 'string' ? [{ message: diagnostics }] : Array.isArray(diagnostics) ? diagnostics : [diagnostics];
    // In file order: a reader fixes them top to bottom.
    const list = [...given].sort((a, b) => (a.location?.file ?? '').localeCompare(b.location?.file ?? '') || (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.col ?? 0) - (b.location?.col ?? 0));
    super(list.map((d) => d.message).join('\n'));
    this.diagnostics = list;
    this.exitCode = exitCode;
  }
}

export function formatDiagnostic(d: Diagnostic): string {
  const out: string[] = [];
  const loc = d.location;
  const kind = d.severity ?? 'error';
  out.push(loc ? `${loc.file}:${loc.line}:${loc.col}: ${kind}: ${d.message}` : `${kind}: ${d.message}`);
  if (loc?.lineText !== undefined) {
    const gutter = String(loc.line).length;
    const text = loc.lineText.replace(/\t/g, ' ');
    out.push(`  ${String(loc.line).padStart(gutter)} | ${text}`);
    const width = Math.max(1, Math.min(loc.length ?? 1, text.length - loc.col + 1));
    out.push(`  ${' '.repeat(gutter)} | ${' '.repeat(loc.col - 1)}${'^'.repeat(width)}`);
  }
  if (d.hint) out.push(`  hint: ${d.hint}`);
  return out.join('\n');
}

/** Levenshtein distance, for did-you-mean suggestions. */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best !== undefined && bestDist <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
