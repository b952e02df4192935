import { isMap, isScalar, isSeq, LineCounter, type Document, type Node, type Pair } from 'yaml';
import type { SourceLocation } from '../diagnostics.js';

/** A parsed YAML file that can turn a data path or an offset back into file:line:col. */
export class SourceFile {
  readonly lines: string[];
  constructor(
    readonly path: string,
    readonly text: string,
    readonly lineCounter: LineCounter,
    readonly doc: Document.Parsed,
  ) {
    this.lines = text.split(/\r?\n/);
  }

  locAtOffset(offset: number, length = 1): SourceLocation {
    const { line, col } = this.lineCounter.linePos(Math.max(0, Math.min(offset, this.text.length)));
    return { file: this.path, line, col, lineText: this.lines[line - 1] ?? '', length };
  }

  /** The YAML node at a data path, and the map pair that holds it (for locating the key). */
  nodeAt(path: readonly (string | number)[]): { node?: Node; pair?: Pair<Node, Node>; found: number } {
    let node: unknown = this.doc.contents;
    let pair: Pair<Node, Node> | undefined;
    let found = 0;
    for (const seg of path) {
      if (isMap(node)) {
        const p = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(seg)) as Pair<Node, Node> | undefined;
        if (!p) break;
        pair = p;
        node = p.value;
      } else if (isSeq(node) && node.items[Number(seg)]) {
        pair = undefined;
        node = node.items[Number(seg)];
      } else break;
      found++;
    }
    return { node: node as Node | undefined, pair, found };
  }

  /** Location of the value at `path` (or of its key when `key` is set), else the closest parent. */
  locate(path: readonly (string | number)[], opts: { key?: boolean } = {}): SourceLocation {
    const { node, pair, found } = this.nodeAt(path);
    const target = opts.key && pair && found === path.length ? (pair.key as Node) : found === path.length ? node : pair?.key ?? node;
    const range = (target as Node | undefined)?.range;
    const at: SourceLocation['at'] = opts.key ? { path: [...path], key: true } : { path: [...path] };
    if (!range) return { ...this.locAtOffset(0), at };
    const len = isScalar(target) ? Math.max(1, range[1] - range[0]) : 1;
    return { ...this.locAtOffset(range[0], len), at };
  }

  /** Location of a key inside the map at `path`. */
  locateKey(path: readonly (string | number)[], key: string): SourceLocation {
    return this.locate([...path, key], { key: true });
  }
}
