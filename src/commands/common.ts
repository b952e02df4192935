import { existsSync, readdirSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../diagnostics.js';
import { openProject, type Project } from '../project.js';

export interface GlobalOptions {
  workspace?: string;
  cache?: string;
  only?: string[];
  param?: string[];
  backend?: string;
}

/** `--only VAR=VALUE`, repeatable: the members with any of the values given for each variable. */
export function parseOnly(specs: string[] = []): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of specs) {
    const m = /^([A-Za-z_]\w*)=(.*)$/.exec(s);
    if (!m) throw new UserError(`--only takes VARIABLE=VALUE (e.g. target=emotion, sources=a+b+c), not "${s}"`);
    const values = (out[m[1]!] ??= []);
    if (!values.includes(m[2]!)) values.push(m[2]!);
  }
  for (const v of Object.values(out)) v.sort();
  return out;
}

/** `--param NAME=VALUE`: the value is read as YAML, so `seed=1` is a number and `tasks=[a, b]` a list. */
export function parseParams(specs: string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of specs) {
    const m = /^([A-Za-z_]\w*)=([\s\S]*)$/.exec(s);
    if (!m) throw new UserError(`--param takes NAME=VALUE (e.g. seed=1, tasks=[emotion, topic]), not "${s}"`);
    try {
      out[m[1]!] = parseYaml(m[2]!);
    } catch (err) {
      throw new UserError(`--param ${m[1]}: the value is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return out;
}

export function open(pipeline: string | undefined, g: GlobalOptions): Promise<Project> {
  return openProject({ pipeline, workspace: g.workspace ?? process.cwd(), cacheDir: g.cache, only: parseOnly(g.only), params: parseParams(g.param), backend: g.backend });
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
