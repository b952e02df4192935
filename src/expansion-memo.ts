import { closeSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CacheStore } from './cache/store.js';
import { didYouMean, UserError, type SourceLocation } from './diagnostics.js';
import type { SourceFile } from './pipeline/source.js';
import type { LoadedPipeline } from './pipeline/load.js';
import type { NodeDef, RawPipeline, ReportSpec } from './pipeline/types.js';
import { writeFileAtomic } from './util/fsx.js';
import { decodeSections, encodeSections, type SectionFormat } from './util/section-file.js';
import { isOutsideDirs, type OutsideDirs } from './workspace-bounds.js';
import type { StageType } from './stage-type.js';
import type { ExecutorKind } from './executor.js';

/*
 * The expansion memo. Parsing and validating YAML is the slow part of a no-op (npm `yaml` needs
 * ~1.8 s for 10,000 entries), and its result depends only on the file's bytes, dfwe's version and
 * the stage types' versions. So the expanded nodes are memoised by those, in state/pipelines/.
 *
 * The memo is a file of sections (util/section-file.ts): the pipeline's fields and tables in the
 * head, the node ids as one column, and the nodes as the text of one JSON array with each
 * node's offset in it. A command that needs every node parses that text at once; a run told
 * from the snapshot decodes only the nodes it must look at (readMemoPart).
 */
/** Bumped whenever what expansion records changes, so an older memo is never read. */
export const EXPANSION_FORMAT = 19;

/** Where a project's expansion memo is, and what it must have been expanded from (see project.ts's locateProject). */
export interface MemoPlace {
  store: CacheStore;
  expansionKey: string;
  variantKey: string;
  /** meaningKey of a parsed document (see project.ts). */
  meaningOf(data: unknown): string;
  /** The pipeline file parsed, once (see project.ts). */
  parse(): Promise<LoadedPipeline>;
}

export interface Expanded {
  /** What it was expanded from (see locateProject). */
  expansionKey: string;
  /** What the pipeline says (see ProjectLocation.meaning). */
  meaningKey: string;
  nodes: NodeDef[];
  name: string;
  members: number;
  instances: number;
  /** The pipeline's `runtime.backend`, if it sets one. */
  backend?: string;
  /** The pipeline's `report` section (what `dfwe metrics` compares). */
  report?: ReportSpec;
  /** The pipeline's `strict`: undeclared files named in commands are errors. */
  strict: boolean;
  params: Record<string, unknown>;
  executor?: string;
  /** The pipeline's `remote`, if it names one. */
  remote?: string;
  outside: OutsideDirs;
}

export async function expandCached(displayPath: string, loc: MemoPlace, stageTypes: ReadonlyMap<string, StageType>, executors: ReadonlyMap<string, ExecutorKind>, only: Record<string, string[]>, params: Record<string, unknown>): Promise<Expanded & { memoised: boolean; save: () => void }> {
  const found = await findMemo(loc);
  if (found) {
    const memo = allNodes(found.file);
    const expanded = memo && fromMemo(found.file, memo, found.locations);
    // A memo only saves time: one of another shape (edited, damaged) is parsed again, not used.
    if (isExpanded(expanded)) return { ...expanded, expansionKey: loc.expansionKey, memoised: true, save: found.save };
  }
  const { source, data } = await loc.parse();
  // Before --param values are put in: they are in the key's other parts.
  const meaningKey = loc.meaningOf(data);
  // Loaded only when needed: a memoised pipeline never pays for the validator.
  const [{ validatePipeline }, { expandPipeline }] = await Promise.all([import('./pipeline/validate.js'), import('./pipeline/expand.js')]);
  validatePipeline(data, source, stageTypes, executors);
  // A copy: the parsed document is the command's, and stays as the file says.
  const raw = { ...(data as RawPipeline) };
  overrideParams(raw, params, displayPath);
  const { nodes, members, instances, readOnly } = expandPipeline(raw, source, stageTypes, { only, executors });
  const result: Expanded = { expansionKey: loc.expansionKey, meaningKey, nodes, name: raw.name ?? displayPath, members, instances, backend: raw.runtime?.backend, report: raw.report, params: raw.params ?? {}, executor: raw.executor, remote: raw.remote, strict: raw.strict === true, outside: { allow: raw.allow_outside ?? [], readOnly } };
  return { ...result, memoised: false, save: saver(memoPathOf(loc), result) };
}

/**
 * The memo that holds this expansion, with its locations where they are found again: one memo per
 * pipeline variant, replaced when the file changes, so edits do not pile up memos (8 MB each at
 * 20,000 nodes). `save`: what to keep once the command's plan succeeded. Undefined: none does.
 */
async function findMemo(loc: MemoPlace): Promise<{ file: MemoFile; locations?: SourceLocation[]; save: () => void } | undefined> {
  const memoPath = memoPathOf(loc);
  const relocationPath = `${memoPath}.relocated`;
  let memoFor: { expansionKey?: string; meaningKey?: string } = {};
  try {
    // The memo of an earlier version of the file (megabytes) is told by its first bytes, unread.
    memoFor = memoKeys(memoPath);
    const found = memoFile(memoPath, memoFor, loc.expansionKey, relocationPath);
    if (found) return { ...found, save: () => {} };
  } catch {
    // not memoised yet
  }
  if (memoFor.meaningKey === undefined || memoFor.expansionKey === undefined) return undefined;
  // The file was edited only in its comments or layout: the memo's nodes, their locations found
  // again in it. It is not written again (megabytes): the locations found again are filed beside
  // it, for the next command to use without parsing the file.
  const { source, data } = await loc.parse();
  if (memoFor.meaningKey !== loc.meaningOf(data)) return undefined;
  const memoExpansionKey = memoFor.expansionKey;
  try {
    const file = readMemoFile(memoPath);
    const locations = file?.expansionKey === memoExpansionKey && file.meaningKey === memoFor.meaningKey ? relocate(file.locations, source) : undefined;
    if (file && locations) return { file, locations, save: () => writeRelocation(relocationPath, { expansionKey: loc.expansionKey, memoExpansionKey, locations }) };
  } catch {
    // expanded again
  }
  return undefined;
}

/**
 * The pipeline file was found to say what its memo says, edited only in its comments or layout
 * (a command told from the snapshot parsed it to compare): the memo's locations found again in
 * it are filed now, so that the next command that opens the memo need not parse the file (22 ms
 * of a run after such a status, here).
 */
export async function relocateMemo(loc: MemoPlace): Promise<void> {
  try {
    (await findMemo(loc))?.save();
  } catch {
    // a memo only saves time
  }
}

function saver(memoPath: string, result: Expanded): () => void {
  return () => {
    try {
      writeFileAtomic(memoPath, encodeMemo(toMemo(result)), { durable: false });
      // The JSON memo an earlier dfwe (expansion format 18 and before) kept for this variant.
      for (const legacy of ['.json', '.json.relocated']) rmSync(memoPath.replace(/\.memo$/, legacy), { force: true });
    } catch {
      // a read-only cache still runs; it only re-parses next time
    }
  };
}

function memoPathOf(loc: Pick<MemoPlace, 'store' | 'variantKey'>): string {
  return join(loc.store.stateDir, 'pipelines', `${loc.variantKey}.memo`);
}

/**
 * The memo's form: every node's source locations as indexes into one table, and each node's
 * `loc` one of a table of shapes (all instances of a stage have the same). Written out per node,
 * locations were 40% of the memo; decoded per node, they were a fifth of its objects. A command
 * stage's `commands` is left out when it is only its `cmd`.
 */
interface Memo extends Omit<Expanded, 'nodes'> {
  locations: SourceLocation[];
  locShapes: LocShape[];
  /** The distinct values of the SHARED fields: each node gives an index for each. */
  values: unknown[];
  nodes: MemoNode[];
}

type MemoNode = Omit<NodeDef, 'loc' | 'commands' | SharedField> & { loc: number; commands?: NodeDef['commands'] } & Record<SharedField, number>;

/** The memo as its file holds it: the nodes as the text of a JSON array, node i at nodes[nodeAt[i] .. nodeAt[i+1] - 1). */
interface MemoFile extends Omit<Memo, 'nodes'> {
  /** The node ids as a JSON array, parsed only by a reader of part of the nodes. */
  ids: Buffer;
  /** Each node's outputs (name to path) as a JSON array, for such a reader too. */
  outs: Buffer;
  nodes: Buffer;
  nodeAt: Uint32Array;
  /** Every character of `nodes` is ASCII: decoded as Latin-1, at memory speed. */
  ascii: boolean;
}

const EMPTY = Buffer.alloc(0);

const MEMO_FILE: SectionFormat = {
  magic: 'dfwememo',
  columns: { ids: 'bytes', outs: 'bytes', nodes: 'bytes', nodeAt: 'u32', locations: 'json', locShapes: 'json', values: 'json' },
};

function encodeMemo(memo: Memo): Buffer {
  const { nodes, ...rest } = memo;
  const texts = nodes.map((n) => JSON.stringify(n));
  const nodeAt = new Uint32Array(texts.length + 1);
  let at = 1;
  let ascii = true;
  texts.forEach((t, i) => {
    nodeAt[i] = at;
    const length = Buffer.byteLength(t);
    if (length !== t.length) ascii = false;
    at += length + 1;
  });
  nodeAt[texts.length] = at;
  // Written in place, each node at its offset: no joined copy of megabytes (100,000 nodes are 43 MB).
  const bytes = Buffer.alloc(Math.max(at, 2));
  bytes[0] = 0x5b; // [
  texts.forEach((t, i) => {
    bytes.write(t, nodeAt[i]!, 'utf8');
    bytes[nodeAt[i + 1]! - 1] = 0x2c; // ,
  });
  bytes[bytes.length - 1] = 0x5d; // ]
  // The keys first (after the section file's byteOrder): memoKeys reads them from the first bytes.
  const column = (values: unknown[]): Buffer => Buffer.from(JSON.stringify(values), 'utf8');
  const file: MemoFile = { ...rest, ids: column(nodes.map((n) => n.id)), outs: column(nodes.map((n) => n.outs)), nodes: bytes, nodeAt, ascii };
  return encodeSections(MEMO_FILE, file);
}

/** The memo file at `path`, if it is one whose columns are of their shapes (its fields are checked where used). */
function readMemoFile(path: string): MemoFile | undefined {
  const m = decodeSections(MEMO_FILE, readFileSync(path)) as MemoFile | undefined;
  if (!m || !Buffer.isBuffer(m.ids) || !Buffer.isBuffer(m.outs) || !Buffer.isBuffer(m.nodes) || !(m.nodeAt instanceof Uint32Array) || m.nodeAt.length === 0 || m.nodeAt[m.nodeAt.length - 1]! > m.nodes.length) return undefined;
  return m;
}

/**
 * Every node of a memo file, parsed at once; undefined where they do not parse (a damaged memo).
 * The file's bytes are let go of before the parse: 43 MB at 100,000 nodes, beside the text and
 * the objects it becomes.
 */
function allNodes(m: MemoFile): unknown[] | undefined {
  const text = m.nodes.toString(m.ascii ? 'latin1' : 'utf8');
  // Every column a view of the file's bytes: let go of, nothing holds them.
  m.nodes = m.ids = m.outs = EMPTY;
  m.nodeAt = new Uint32Array(0);
  try {
    const nodes = JSON.parse(text) as unknown;
    return Array.isArray(nodes) ? nodes : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The memo written for this expansion, or for the one whose file says the same (its locations
 * found again, filed beside it: see expandCached); undefined where there is none.
 */
function memoFile(memoPath: string, memoFor: { expansionKey?: string }, expansionKey: string, relocationPath: string): { file: MemoFile; locations?: SourceLocation[] } | undefined {
  if (memoFor.expansionKey === undefined) return undefined;
  let locations: SourceLocation[] | undefined;
  if (memoFor.expansionKey !== expansionKey) {
    // The file as it is now was found to say what the memo's says, its locations found again.
    const moved = readRelocation(relocationPath);
    if (!moved || moved.expansionKey !== expansionKey || moved.memoExpansionKey !== memoFor.expansionKey) return undefined;
    locations = moved.locations;
  }
  const file = readMemoFile(memoPath);
  return file && file.expansionKey === memoFor.expansionKey ? { file, locations } : undefined;
}

/** The nodes a part of the pipeline is made of, with its fields: what readMemoPart decodes. */
export interface MemoPart extends Omit<Expanded, 'nodes'> {
  /** The nodes asked for whole, in the memo's order. */
  nodes: NodeDef[];
  /** The outputs (name to path) of the nodes asked for only those. */
  outputs: Map<string, Record<string, string>>;
  /** Any node of the expansion, decoded when asked (undefined: it has none by that id). */
  node(id: string): NodeDef | undefined;
  save: () => void;
}

/**
 * Only the nodes named, decoded from this expansion's memo (for a run told from the snapshot,
 * which looks at a few of 20,000: engine/part-run.ts): `whole` as node definitions, `outputsOf`
 * only for their outputs (a column of their own). Undefined when there is no such memo, or one of
 * them is not in it.
 */
export async function readMemoPart(loc: MemoPlace, whole: ReadonlySet<string>, outputsOf: ReadonlySet<string>): Promise<MemoPart | undefined> {
  try {
    const found = await findMemo(loc);
    if (!found) return undefined;
    const { file, locations } = found;
    const ids = JSON.parse(file.ids.toString('utf8')) as unknown;
    const outs = JSON.parse(file.outs.toString('utf8')) as unknown;
    if (!Array.isArray(ids) || ids.length !== file.nodeAt.length - 1 || !Array.isArray(outs) || outs.length !== ids.length) return undefined;
    const encoding = file.ascii ? 'latin1' : 'utf8';
    /** Node i as parsed from its text; undefined where the text is not node i's. */
    const parse = (i: number): unknown => {
      const node = JSON.parse(file.nodes.toString(encoding, file.nodeAt[i], file.nodeAt[i + 1]! - 1)) as { id?: unknown };
      return node?.id === ids[i] ? node : undefined;
    };
    const picked: unknown[] = [];
    const outputs = new Map<string, Record<string, string>>();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      if (whole.has(id)) {
        const node = parse(i);
        if (!node) return undefined;
        picked.push(node);
      } else if (outputsOf.has(id)) {
        const o = outs[i] as unknown;
        if (typeof o !== 'object' || o === null || Object.values(o).some((p) => typeof p !== 'string')) return undefined;
        outputs.set(id, o as Record<string, string>);
      }
    }
    const part = fromMemo(file, picked, locations);
    if (!isExpanded(part) || part.nodes.length !== whole.size || outputs.size !== outputsOf.size) return undefined;
    const node = (id: string): NodeDef | undefined => {
      const i = ids.indexOf(id);
      const parsed = i < 0 ? undefined : parse(i);
      const one = parsed && fromMemo(file, [parsed], locations);
      return isExpanded(one) ? one.nodes[0] : undefined;
    };
    return { ...part, expansionKey: loc.expansionKey, outputs, node, save: found.save };
  } catch {
    return undefined; // the full open says why, located
  }
}

/**
 * Fields most nodes have the same value of (often empty, or the pipeline's whole params): kept
 * once in the memo and decoded into one frozen object that those nodes share. Decoded per node,
 * they were eight of each node's fourteen objects.
 */
const SHARED = ['params', 'pipelineParams', 'env', 'metricsFiles', 'resources', 'executorOptions', 'outKinds'] as const;
type SharedField = (typeof SHARED)[number];

interface LocShape {
  stage: number;
  deps: number[];
  outs: Record<string, number>;
  commands: number[];
}

function toMemo(e: Expanded): Memo {
  const index = new Map<SourceLocation, number>();
  const locations: SourceLocation[] = [];
  const at = (l: SourceLocation): number => index.get(l) ?? (index.set(l, locations.push(l) - 1), locations.length - 1);
  const intern = <T>(table: T[], seen: Map<string, number>, value: T): number => {
    // Most of a node's shared fields are empty: 140,000 of them stringified took a tenth of a 20,002-node memo's writing.
    const text = isEmpty(value) ? (Array.isArray(value) ? '[]' : '{}') : JSON.stringify(value);
    let i = seen.get(text);
    if (i === undefined) seen.set(text, (i = table.push(value) - 1));
    return i;
  };
  const locShapes: LocShape[] = [];
  const shapeIndex = new Map<string, number>();
  const values: unknown[] = [];
  const valueIndex = new Map<string, number>();
  const nodes = e.nodes.map((n) => {
    const shape: LocShape = { stage: at(n.loc.stage), deps: n.loc.deps.map(at), outs: Object.fromEntries(Object.entries(n.loc.outs).map(([o, l]) => [o, at(l)])), commands: n.loc.commands.map(at) };
    // A spread, then fields set over it: V8 clones the node's shape whole. A rest pattern
    // (`{ loc, commands, ...rest }`) copied it key by key, 13 µs a node after a pipeline's
    // expansion: 261 ms of a 20,002-node `status` after an edit. (An undefined field is not written.)
    const node: Record<string, unknown> = { ...n };
    node.loc = intern(locShapes, shapeIndex, shape);
    node.commands = onlyCmd(n) ? undefined : n.commands;
    for (const f of SHARED) node[f] = intern(values, valueIndex, n[f]);
    return node as Memo['nodes'][number];
  });
  return { ...e, locations, locShapes, values, nodes };
}

/** An empty object or array (what JSON writes as {} or []). */
function isEmpty(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.length === 0;
  for (const _ in value) return false;
  return Object.getPrototypeOf(value) === Object.prototype;
}

function onlyCmd(n: Pick<NodeDef, 'commands' | 'command'>): boolean {
  return n.commands.length === 1 && n.commands[0]!.field === 'cmd' && n.commands[0]!.text === n.command;
}

/**
 * A memo's locations found again in `source`, a file that says the same as the one it was
 * expanded from (meaningKey), each by its data path. Undefined for a table of another shape.
 */
function relocate(locations: unknown, source: SourceFile): SourceLocation[] | undefined {
  if (!Array.isArray(locations)) return undefined;
  return (locations as SourceLocation[]).map((l) => (l?.at && Array.isArray(l.at.path) ? source.locate(l.at.path, { key: l.at.key === true }) : l));
}

/**
 * A memo's locations found again in an edited file (see expandCached): for the file whose
 * expansion key is `expansionKey`, in place of the table of the memo written for `memoExpansionKey`.
 */
interface Relocation {
  expansionKey: string;
  memoExpansionKey: string;
  locations: SourceLocation[];
}

function readRelocation(path: string): Relocation | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Relocation;
    return typeof r?.expansionKey === 'string' && typeof r.memoExpansionKey === 'string' && Array.isArray(r.locations) ? r : undefined;
  } catch {
    return undefined;
  }
}

function writeRelocation(path: string, r: Relocation): void {
  try {
    writeFileAtomic(path, JSON.stringify(r), { durable: false });
  } catch {
    // a read-only cache still runs; it only parses the file next time
  }
}

/**
 * The expansion a memo holds, with these of its nodes (as parsed: completed in place); undefined
 * for a memo of another shape. `relocated`: its locations found again in the file it is used for
 * (relocate).
 */
function fromMemo(memo: MemoFile, parsed: unknown[], relocated?: SourceLocation[]): Expanded | undefined {
  if (!Array.isArray(memo.locations) || !Array.isArray(memo.locShapes)) return undefined;
  if (relocated && relocated.length !== memo.locations.length) return undefined;
  const locations = relocated ?? memo.locations;
  const loc = (i: unknown): SourceLocation | undefined => (typeof i === 'number' ? locations[i] : undefined);
  // Each shape decoded once and shared by its nodes (nothing writes a node's loc).
  const shapes: NodeDef['loc'][] = [];
  for (const sh of memo.locShapes as unknown[]) {
    const l = sh as LocShape;
    if (typeof sh !== 'object' || sh === null || !Array.isArray(l.deps) || !Array.isArray(l.commands) || typeof l.outs !== 'object' || l.outs === null) return undefined;
    const stage = loc(l.stage);
    const deps = l.deps.map(loc);
    const commands = l.commands.map(loc);
    const outs = Object.entries(l.outs).map(([o, i]) => [o, loc(i)] as const);
    if (!stage || deps.some((d) => !d) || commands.some((d) => !d) || outs.some(([, x]) => !x)) return undefined;
    shapes.push({ stage, deps: deps as SourceLocation[], outs: Object.fromEntries(outs) as Record<string, SourceLocation>, commands: commands as SourceLocation[] });
  }
  if (!Array.isArray(memo.values)) return undefined;
  const values = memo.values.map(deepFreeze);
  // The parsed nodes are this function's own: completed in place, not copied.
  const nodes = parsed as NodeDef[];
  for (const n of parsed) {
    const node = n as Record<string, unknown> & { loc: unknown; commands?: unknown; command?: unknown };
    if (typeof n !== 'object' || n === null || typeof node.loc !== 'number' || shapes[node.loc] === undefined) return undefined;
    node.loc = shapes[node.loc];
    for (const f of SHARED) {
      const i = node[f];
      if (typeof i !== 'number' || i < 0 || i >= values.length) return undefined;
      node[f] = values[i];
    }
    if (node.commands === undefined) {
      if (typeof node.command !== 'string') return undefined;
      node.commands = [{ field: 'cmd', text: node.command }];
    }
  }
  const { locations: _, locShapes: __, values: ___, ids: ____, outs: _______, nodeAt: _____, ascii: ______, ...rest } = memo;
  return { ...rest, nodes };
}

/** Shared by many nodes: a write to one would be a write to all, so none is allowed. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * The keys a memo was written for, read from its first bytes (the section file's prefix, then
 * its head, which keeps the key order of `Expanded`: expansionKey, then meaningKey), without
 * reading megabytes.
 */
function memoKeys(path: string): { expansionKey?: string; meaningKey?: string } {
  const fd = openSync(path, 'r');
  let head: string;
  try {
    const buf = Buffer.alloc(160);
    head = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
  const m = /^dfwememo[^]{8}\{"byteOrder":"[LB]E","expansionKey":"([0-9a-f]{32})","meaningKey":"([0-9a-f]{32})",/.exec(head);
  return m ? { expansionKey: m[1], meaningKey: m[2] } : {};
}

function isExpanded(m: unknown): m is Expanded {
  const e = m as Expanded;
  return typeof m === 'object' && m !== null && Array.isArray(e.nodes) && typeof e.meaningKey === 'string' && typeof e.name === 'string' && typeof e.members === 'number' && typeof e.instances === 'number' && isOutsideDirs(e.outside) && typeof e.params === 'object' && e.params !== null && typeof e.strict === 'boolean' &&
    e.nodes.every((n) => typeof n === 'object' && n !== null && typeof n.id === 'string' && typeof n.outs === 'object' && n.outs !== null && Array.isArray(n.deps) && Array.isArray(n.refs));
}


/** `--param` values replace the pipeline's: exactly as if the file said so, keys included. */
function overrideParams(raw: RawPipeline, params: Record<string, unknown>, displayPath: string): void {
  const names = Object.keys(raw.params ?? {});
  for (const name of Object.keys(params)) {
    if (names.includes(name)) continue;
    const guess = didYouMean(name, names);
    throw new UserError(`--param ${name}: ${displayPath} has no param "${name}"${guess ? `; did you mean "${guess}"?` : names.length ? ` (it has ${names.join(', ')})` : ''}`);
  }
  if (Object.keys(params).length) raw.params = { ...raw.params, ...params };
}
