import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { referencePages } from '../scripts/reference.js';
import { REPO } from './helpers.js';

/** The README and every page under docs/, by path from the repository root. */
function pages(): string[] {
  const out = ['README.md'];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.md')) out.push(join(dir, e.name));
    }
  };
  walk('docs');
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string): string => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');

function anchorsOf(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    const h = /^#{1,6}\s+(.*)$/.exec(line);
    if (h) {
      const base = slug(h[1]!);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of line.matchAll(/<a id="([^"]+)"/g)) out.add(m[1]!);
  }
  return out;
}

test('docs/reference/ is what `npm run docs` generates from the CLI and the registries', () => {
  for (const [path, text] of referencePages()) {
    const file = join(REPO, path);
    assert.ok(existsSync(file), `${path} is missing: run npm run docs`);
    assert.equal(readFileSync(file, 'utf8'), text, `${path} is stale: run npm run docs and commit it`);
  }
});

test('the bench results page holds every figure of every committed results file', () => {
  const page = referencePages().get('docs/reference/bench-results.md')!;
  const dir = join(REPO, 'bench/results');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'engine.json');
  assert.ok(files.length > 0, 'results of benches other than the engine are committed');
  for (const f of files) {
    const name = f.slice(0, -'.json'.length);
    assert.match(page, new RegExp(`^## ${name}$`, 'm'), `${f} has a section`);
    const section = page.slice(page.indexOf(`## ${name}\n`)).split(/\n## /)[0]!;
    const { date: _d, seconds: _s, machine: _m, ...rest } = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
    const walk = (v: unknown, path: string): void => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
      else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
      else if (typeof v === 'number') assert.ok(section.includes(`| \`${path}\` | ${JSON.stringify(v)} |`), `${name}: ${path} = ${v} is on the page`);
    };
    walk(rest, '');
  }
});

test('the generated reference lists every command, stage type, merge method, optimizer and executor', () => {
  const pages = referencePages();
  const cli = pages.get('docs/reference/cli.md')!;
  for (const c of ['run', 'status', 'why', 'metrics', 'report', 'gc', 'verify', 'logs', 'exec']) assert.match(cli, new RegExp(`^## dfwe ${c}$`, 'm'));
  assert.match(cli, /\| `-j, --jobs <n>` \| nodes to run at once/);
  const plugins = pages.get('docs/reference/plugins.md')!;
  for (const name of ['prepare-data', 'merge-search', 'linear', 'multislerp', 'slurm', 'local']) assert.match(plugins, new RegExp(`^### \`${name}\`$`, 'm'));
  for (const name of ['nelder-mead', 'cma-es', 'greedy-soup']) assert.match(plugins, new RegExp(`^\\| \`${name}\` \\|`, 'm'));
  assert.match(plugins, /\| `density` \| number \| `0\.2` \|/, "ties' density and its default, from the method's schema");
});

test('every relative link in the README and docs/ leads to a file, and to a heading in it', () => {
  const broken: string[] = [];
  for (const page of pages()) {
    const text = readFileSync(join(REPO, page), 'utf8');
    const prose = text.replace(/^```[\s\S]*?^```/gm, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? join(REPO, page) : join(REPO, dirname(page), path);
      if (!existsSync(file)) {
        broken.push(`${page}: ${target} (no ${relative(REPO, file)})`);
        continue;
      }
      if (anchor && statSync(file).isFile() && file.endsWith('.md') && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${page}: ${target} (no heading #${anchor})`);
    }
  }
  assert.deepEqual(broken, []);
});

test('the README is a front door: at most 300 lines, the install and test commands first', () => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const lines = readme.split('\n').length;
  assert.ok(lines <= 300, `the README has ${lines} lines: move guides and figures to docs/`);
  assert.match(readme.slice(0, 300), /npm ci && npx dfwe run[\s\S]*npm test/);
});
