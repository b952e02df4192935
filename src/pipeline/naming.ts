import { keyOf } from '../util/hash.js';

/* How sweep values are made canonical and shown, and what nodes and default outputs are named. */

/*
 * Values of sweep and foreach variables are canonical: a list of plain values is a set (sorted,
 * without repeats), so {emotion, qa} is one value however it was built, and the expert trained on
 * it is one node whichever sweep member asks for it.
 */
export function canonicalValue(v: unknown): unknown {
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) {
    const seen = new Map<string, unknown>();
    for (const x of v) seen.set(JSON.stringify(x), x);
    return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, x]) => x);
  }
  return v;
}

/** A value as it appears in node ids and `--only`: `emotion`, `emotion+qa`, `3`. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return /^[\w.@-]+$/.test(v) ? v : JSON.stringify(v);
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) return v.map(showValue).join('+');
  return typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
}

export function nodeId(stage: string, vars: Record<string, unknown>): string {
  const keys = Object.keys(vars).sort();
  return keys.length ? `${stage}[${keys.map((k) => `${k}=${showValue(vars[k])}`).join(',')}]` : stage;
}

/** Default output path: out/STAGE/OUT, or out/STAGE/var=value,…/OUT in a sweep. */
/** Bytes a file name may have on Linux filesystems; a longer name fails with ENAMETOOLONG. */
const NAME_BYTES = 255;

/**
 * A directory name within NAME_BYTES: a long one (a sweep value of 3,000 characters) keeps its
 * first 180 bytes and a digest of the whole, so two long values never share a directory.
 */
function fitName(name: string, whole: string): string {
  if (Buffer.byteLength(name) <= NAME_BYTES) return name;
  let head = name.slice(0, 180);
  while (Buffer.byteLength(head) > 180) head = head.slice(0, -1);
  return `${head}~${keyOf(whole).slice(0, 16)}`;
}

export function defaultOutPath(stage: string, vars: Record<string, unknown>, out: string): string {
  const keys = Object.keys(vars).sort();
  if (keys.length === 0) return `out/${stage}/${out}`;
  const raw = keys.map((k) => `${k}=${showValue(vars[k])}`).join(',');
  // Commands get paths substituted as they are: keep them to characters no shell treats
  // specially. Values that needed replacing get a digest suffix, so two never collide.
  const safe = raw.replace(/"/g, '').replace(/[^\p{L}\p{N}._,=+@%-]/gu, '_');
  const dir = safe === raw.replace(/"/g, '') ? safe : `${safe}~${keyOf(raw).slice(0, 8)}`;
  return `out/${stage}/${fitName(dir, raw)}/${out}`;
}

