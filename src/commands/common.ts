import { existsSync, readdirSync } from 'node:fs';
import { UserError } from '../diagnostics.js';
import { openProject, type Project } from '../project.js';

export interface GlobalOptions {
  workspace?: string;
  cache?: string;
  only?: string[];
  backend?: string;
}

export function parseOnly(specs: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of specs) {
    const m = /^([A-Za-z_]\w*)=(.*)$/.exec(s);
    if (!m) throw new UserError(`--only takes VARIABLE=VALUE (e.g. target=emotion, sources=a+b+c), not "${s}"`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

export function open(pipeline: string | undefined, g: GlobalOptions): Promise<Project> {
  return openProject({ pipeline, workspace: g.workspace ?? process.cwd(), cacheDir: g.cache, only: parseOnly(g.only), backend: g.backend });
}

/** GPUs visible to this machine: NVIDIA device nodes, unless CUDA_VISIBLE_DEVICES narrows them. */
export function detectGpus(): number {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) return visible.trim() === '' ? 0 : visible.split(',').filter((s) => s.trim() !== '' && s.trim() !== '-1').length;
  if (!existsSync('/dev')) return 0;
  return readdirSync('/dev').filter((d) => /^nvidia\d+$/.test(d)).length;
}

export function parseResources(specs: string[] = []): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of specs) {
    const m = /^([A-Za-z_][\w-]*)=(\d+)$/.exec(s);
    if (!m) throw new UserError(`--resource takes NAME=N (e.g. gpu=2), not "${s}"`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

export function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} takes a whole number ≥ 1, not "${value}"`);
  return n;
}
