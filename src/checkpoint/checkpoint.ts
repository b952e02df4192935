import { closeSync, copyFileSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StageInputError } from '../stage-type.js';
import { readHeader, readTensor, safetensorsLayout, writeAll, type TensorInfo } from './safetensors.js';
import { pushAll } from '../util/arrays.js';
import { nestedWithin } from '../util/depth.js';

/*
 * A checkpoint as frameworks save it: one .safetensors file, or a directory the way Hugging Face
 * `save_pretrained` writes one: model.safetensors, or shards listed by model.safetensors.index.json,
 * beside config.json, tokenizer files and the like. A merge reads one tensor at a time from each
 * input and writes the result in the layout of the first input, with its other files copied, so
 * `from_pretrained(dir)` loads the result.
 */

const INDEX = 'model.safetensors.index.json';

/** Weight files of other formats: copying them beside merged safetensors would leave stale weights. */
const OTHER_WEIGHTS = /\.(bin|pt|pth|ckpt|h5|msgpack|gguf|safetensors)$|^(pytorch_model|tf_model|flax_model)\b.*\.index\.json$/;

export interface CheckpointTensor extends TensorInfo {
  /** The safetensors file holding it, relative to the checkpoint's root. */
  file: string;
}

export interface Checkpoint {
  /** What the user named: a file, or a directory. */
  path: string;
  kind: 'file' | 'dir';
  /** Safetensors files, relative to the root (the file's directory for a single file). */
  files: string[];
  tensors: Map<string, CheckpointTensor>;
  /** Each file's tensor names, in data order: the layout a merged checkpoint keeps. */
  layout: Map<string, string[]>;
  metadata: Map<string, Record<string, string>>;
  /** The sharded index, when there is one, as read. */
  index?: { metadata?: Record<string, unknown>; weight_map: Record<string, string> };
  /** Other files of a directory checkpoint (config, tokenizer), relative: copied into a merge. */
  extras: string[];
}

function rootOf(c: Checkpoint): string {
  return c.kind === 'file' ? dirname(c.path) : c.path;
}

export function openCheckpoint(path: string): Checkpoint {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new StageInputError(`checkpoint ${path} does not exist`);
  }
  if (st.isFile()) return fromFiles(path, 'file', [basename(path)], dirname(path), undefined, []);
  if (!st.isDirectory()) throw new StageInputError(`checkpoint ${path} is neither a file nor a directory`);
  const names = listFiles(path);
  const extras = names.filter((n) => !OTHER_WEIGHTS.test(basename(n)) && n !== INDEX);
  if (names.includes(INDEX)) {
    let index: Checkpoint['index'];
    try {
      index = JSON.parse(readFileSync(join(path, INDEX), 'utf8')) as Checkpoint['index'];
    } catch (err) {
      throw new StageInputError(`${join(path, INDEX)}: not JSON (${(err as Error).message})`);
    }
    if (!index || typeof index.weight_map !== 'object' || index.weight_map === null) throw new StageInputError(`${join(path, INDEX)}: has no "weight_map"`);
    if (!Object.values(index.weight_map).every((f) => typeof f === 'string')) throw new StageInputError(`${join(path, INDEX)}: "weight_map" must map tensor names to shard file names`);
    // It is written again beside the merge: nesting past a writer's recursion is refused here.
    if (!nestedWithin(index, 64)) throw new StageInputError(`${join(path, INDEX)}: nested more than 64 levels deep; an index is a weight map and a little metadata`);
    const shards = [...new Set(Object.values(index.weight_map))].sort();
    for (const s of shards) if (!names.includes(s)) throw new StageInputError(`${join(path, INDEX)} lists shard ${s}, which is not in ${path}`);
    const c = fromFiles(path, 'dir', shards, path, index, extras);
    for (const [name, file] of Object.entries(index.weight_map)) {
      if (c.tensors.get(name)?.file !== file) throw new StageInputError(`${join(path, INDEX)} says tensor "${name}" is in ${file}, but ${c.tensors.has(name) ? `it is in ${c.tensors.get(name)!.file}` : 'no shard has it'}`);
    }
    return c;
  }
  const weights = names.filter((n) => n.endsWith('.safetensors'));
  const file = weights.includes('model.safetensors') ? 'model.safetensors' : weights.length === 1 ? weights[0]! : undefined;
  if (!file) {
    throw new StageInputError(
      weights.length === 0
        ? `checkpoint ${path} has no .safetensors file (save it with safetensors, e.g. save_pretrained(dir, safe_serialization=True))`
        : `checkpoint ${path} has several .safetensors files (${weights.join(', ')}) and no ${INDEX} to say how they fit`,
    );
  }
  return fromFiles(path, 'dir', [file], path, undefined, extras);
}

function fromFiles(path: string, kind: Checkpoint['kind'], files: string[], root: string, index: Checkpoint['index'], extras: string[]): Checkpoint {
  const tensors = new Map<string, CheckpointTensor>();
  const layout = new Map<string, string[]>();
  const metadata = new Map<string, Record<string, string>>();
  for (const f of files) {
    const h = readHeader(join(root, f));
    layout.set(f, h.tensors.map((t) => t.name));
    metadata.set(f, h.metadata);
    for (const t of h.tensors) {
      const seen = tensors.get(t.name);
      if (seen) throw new StageInputError(`checkpoint ${path}: tensor "${t.name}" is in both ${seen.file} and ${f}`);
      tensors.set(t.name, { ...t, file: f });
    }
  }
  return { path, kind, files, tensors, layout, metadata, index, extras };
}

function listFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) pushAll(out, listFiles(dir, r));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

/** Open file descriptors of a checkpoint's files, for reading tensors one at a time. */
export class CheckpointReader {
  private readonly fds = new Map<string, number>();

  constructor(readonly checkpoint: Checkpoint) {}

  /** Bytes [from, from + length) of a tensor (all of it by default). */
  read(name: string, buf?: Buffer, from?: number, length?: number): Buffer {
    const t = this.checkpoint.tensors.get(name);
    if (!t) throw new StageInputError(`${this.checkpoint.path} has no tensor "${name}"`);
    let fd = this.fds.get(t.file);
    if (fd === undefined) {
      fd = openSync(join(rootOf(this.checkpoint), t.file), 'r');
      this.fds.set(t.file, fd);
    }
    return readTensor(fd, t, buf, from, length);
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** Where a tensor's bytes go in a merged checkpoint: the file (absolute) and the byte offset in it. */
export interface TensorPosition {
  file: string;
  offset: number;
}

/**
 * A checkpoint in the layout of `like` (the first input), laid out in directory `out` before any
 * tensor is computed: the same files with the same tensors (names, dtypes, shapes) in the same
 * order and the same metadata, each file created at its full size with its header, so that any
 * number of threads can write their ranges of any tensor at its position. `finish` writes the
 * index when `like` is sharded and copies `like`'s other files.
 */
export function layOutCheckpoint(like: Checkpoint, out: string): { positions: Map<string, TensorPosition>; finish(): void } {
  mkdirSync(out, { recursive: true });
  const positions = new Map<string, TensorPosition>();
  for (const f of like.files) {
    const names = like.layout.get(f)!;
    const layout = safetensorsLayout(names.map((n) => ({ name: n, dtype: like.tensors.get(n)!.dtype, shape: like.tensors.get(n)!.shape })), like.metadata.get(f));
    const path = join(out, f);
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, 'w');
    try {
      writeAll(fd, layout.header, 0);
      ftruncateSync(fd, layout.size);
    } finally {
      closeSync(fd);
    }
    names.forEach((n, i) => positions.set(n, { file: path, offset: layout.offsets[i]! }));
  }
  return {
    positions,
    finish() {
      const root = rootOf(like);
      if (like.index) writeFileSync(join(out, INDEX), JSON.stringify(like.index, null, 2) + '\n');
      for (const e of like.extras) {
        mkdirSync(dirname(join(out, e)), { recursive: true });
        copyFileSync(join(root, e), join(out, e));
      }
    },
  };
}
