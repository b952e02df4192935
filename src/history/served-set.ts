import { existsSync, readFileSync } from 'node:fs';
import type { CacheStore } from '../cache/store.js';
import { writeFileAtomic } from '../util/fsx.js';
import { digestBytes } from '../util/hash.js';
import { isDigest } from '../util/key-types.js';
import { HISTORY_FORMAT, servedPath, type ServedSet } from './run-log.js';

/*
 * A served set as it is stored (runs/served/<digest>.json, named by its digest): JSON with one
 * node's entry a line. A run that serves all but a few nodes as the run before it did (a run told
 * from the snapshot) reads only the entries it needs and writes its own set as the earlier one's
 * lines with its few in place: at 20,002 nodes a set is 2.2 MB, and it was parsed, rebuilt and
 * written again whole for a run of three nodes. Any JSON reader reads it as before (runs.ts).
 */

export type ServedEntry = ServedSet['nodes'][number];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isScore = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const outputsOk = (o: unknown): boolean => o === undefined || o === null || (isObject(o) && Object.values(o).every((d) => isString(d) && isDigest(d)));

/** An entry as a served set holds it: id, stage, result key, metrics (or null), its outputs' digests (or null, or none). */
export function servedEntryOk(e: unknown): e is ServedEntry {
  return Array.isArray(e) && (e.length === 4 || e.length === 5) && isString(e[0]) && isString(e[1]) && isString(e[2]) && (e[3] === null || (isObject(e[3]) && Object.values(e[3]).every(isScore))) && outputsOk(e[4]);
}

const OPEN = `{"format":${HISTORY_FORMAT},"nodes":[\n`;
const CLOSE = '\n]}';

/** A set's text from its entries' JSON, in pipeline order: one a line. */
export function servedSetText(entries: readonly string[]): string {
  return `${OPEN}${entries.join(',\n')}${CLOSE}`;
}

/** Stores a set's text by its digest (once: many runs of an unchanged pipeline share one); the digest, undefined if it could not be written. */
export function storeServedText(store: CacheStore, text: string): string | undefined {
  const digest = digestBytes(text);
  try {
    if (!existsSync(servedPath(store, digest))) writeFileAtomic(servedPath(store, digest), text, { durable: false });
    return digest;
  } catch {
    return undefined;
  }
}

/** A stored served set, read entry by entry: each is parsed and checked when asked for. */
export class StoredServedSet {
  private constructor(
    private readonly text: string,
    /** Where line i starts; the last element, where the last line ends. */
    private readonly starts: Uint32Array,
  ) {}

  /** The set of this digest, if it is in the cache and is its digest's; undefined otherwise. */
  static read(store: CacheStore, digest: string | undefined): StoredServedSet | undefined {
    if (!digest || !/^[0-9a-f]{32}$/.test(digest)) return undefined;
    let text: string;
    try {
      text = readFileSync(servedPath(store, digest), 'utf8');
    } catch {
      return undefined;
    }
    // Named by its digest: a set changed since it was written is not read (its output digests key nodes).
    if (digestBytes(text) !== digest) return undefined;
    if (text.startsWith(OPEN) && text.endsWith(CLOSE)) return StoredServedSet.indexed(text);
    // One line (written before dfwe kept one entry a line): its entries laid out as they are now.
    try {
      const s = JSON.parse(text) as ServedSet;
      if (s?.format !== HISTORY_FORMAT || !Array.isArray(s.nodes) || !s.nodes.every(servedEntryOk)) return undefined;
      return StoredServedSet.indexed(servedSetText(s.nodes.map((e) => JSON.stringify(e))));
    } catch {
      return undefined;
    }
  }

  private static indexed(text: string): StoredServedSet | undefined {
    const end = text.length - CLOSE.length;
    const starts: number[] = [];
    for (let at = OPEN.length; at < end; ) {
      starts.push(at);
      const nl = text.indexOf('\n', at);
      if (nl < 0 || nl > end) return undefined;
      // Every line but the last ends with the comma between entries.
      if (nl < end && text[nl - 1] !== ',') return undefined;
      at = nl + 1;
    }
    starts.push(end + 1);
    return new StoredServedSet(text, Uint32Array.from(starts));
  }

  get length(): number {
    return this.starts.length - 1;
  }

  /** Entry i's JSON, as stored. */
  line(i: number): string {
    return this.text.slice(this.starts[i]!, this.starts[i + 1]! - (i + 1 < this.length ? 2 : 1));
  }

  /** Entry i, parsed and checked; undefined where it is not an entry. */
  entry(i: number): ServedEntry | undefined {
    if (!(i >= 0 && i < this.length)) return undefined;
    try {
      const e = JSON.parse(this.line(i)) as unknown;
      return servedEntryOk(e) ? e : undefined;
    } catch {
      return undefined;
    }
  }
}

/** A run's served set whole (runs, diff, gc), if it is still in the cache and is its digest's. */
export function readServed(store: CacheStore, digest: string | undefined): ServedSet | undefined {
  const set = StoredServedSet.read(store, digest);
  if (!set) return undefined;
  const nodes: ServedEntry[] = [];
  for (let i = 0; i < set.length; i++) {
    const e = set.entry(i);
    if (!e) return undefined;
    nodes.push(e);
  }
  return { format: HISTORY_FORMAT, nodes };
}
